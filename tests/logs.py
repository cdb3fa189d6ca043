"""vix_ttl's log events as a test reads them: dicts, from the standard library's records."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

# What every record has; the rest of a vix_ttl record is its event and its fields.
_RECORD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class _Events(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        event: dict[str, Any] = {"log_level": record.levelname.lower()}
        event.update((key, value) for key, value in record.__dict__.items() if key not in _RECORD)
        if record.exc_info:
            event["exc_info"] = record.exc_info
        self.events.append(event)


@contextlib.contextmanager
def captured_logs(level: int = logging.DEBUG) -> Iterator[list[dict[str, Any]]]:
    """Every event vix_ttl logs at *level* or above while the block runs: ``event``,
    ``log_level`` and the fields, plus ``exc_info`` when the record carries a traceback
    (at DEBUG, as an application enabled for DEBUG would see)."""
    logger = logging.getLogger("vix_ttl")
    handler, before = _Events(), logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler.events
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)
