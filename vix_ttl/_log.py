"""How vix_ttl logs: through the standard library's ``vix_ttl`` logger, never on its own.

A library does not decide where its logs go, or whether they are shown: the application
does, through ``logging``. So each module's logger is structlog wrapped over
``logging.getLogger(<module>)``, a child of ``vix_ttl``, with processors of its own: vix_ttl
never calls ``structlog.configure``, and needs no one to (structlog's defaults print to
stdout), nor takes the application's structlog configuration, made for its own loggers.

An event is one record whose message is one line: the event's name, then its fields as
``key=value``. Its name and fields are also attributes of the record (``record.event``,
``record.breaker``, ...), for formatters that render them themselves (structlog's
``ProcessorFormatter`` with ``ExtraAdder``). A traceback goes with a record only when the
logger is enabled for DEBUG: a backend that is down is one line, not fifty, per burst.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog
from structlog.typing import EventDict

__all__ = ["get_logger"]

_FIELDS = structlog.processors.LogfmtRenderer()
# A field named like an attribute every record has would make ``logging`` raise in the
# caller's call: such a field stays in the message only.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _to_record(logger: logging.Logger, method_name: str, event_dict: EventDict) -> dict[str, Any]:
    """The keyword arguments of the ``logging`` call: one line, the fields as ``extra``."""
    exc_info = event_dict.pop("exc_info", None)
    extra = {key: value for key, value in event_dict.items() if key not in _RECORD_ATTRIBUTES}
    fields = {key: value for key, value in event_dict.items() if key != "event"}
    line = f"{event_dict['event']} {_FIELDS(logger, method_name, fields)}" if fields else event_dict["event"]
    # None, not left out: ``Logger.exception`` would otherwise add the traceback itself.
    return {"msg": line, "extra": extra, "exc_info": exc_info if logger.isEnabledFor(logging.DEBUG) else None}


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """The logger of the module *name* (a child of ``vix_ttl``)."""
    logger: structlog.stdlib.BoundLogger = structlog.wrap_logger(
        logging.getLogger(name),
        # Each given: nothing is taken from structlog's global configuration, the application's.
        processors=[structlog.stdlib.filter_by_level, _to_record],
        wrapper_class=structlog.stdlib.BoundLogger,
        context_class=dict,
        cache_logger_on_first_use=True,
    )
    return logger
