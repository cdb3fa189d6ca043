"""Faults logged once per burst, not once per call: a failing backend, rejected entries.

When Redis goes down under 1,000 requests/s, one error line per request would
bury the log; so would a flood of forged entries. The first fault of a burst
is logged with its exception; while faults go on, a reminder with the count
goes out at most every ``remind_seconds``; the first success after a burst
logs the end of it and how many faults the burst had.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import structlog

__all__ = ["BACKEND", "REFRESH", "REJECTED", "SERVED_ON_ERROR", "UNSTORABLE", "Events", "FaultLog"]

_log = structlog.get_logger("vix_ttl")


class Events(NamedTuple):
    """The log events of one kind of fault: its first, its reminders, its end."""

    first: str
    reminder: str
    end: str


BACKEND = Events("cache_backend_failed", "cache_backend_still_failing", "cache_backend_recovered")
"""A cache backend raised or timed out: the call computed anyway."""
REJECTED = Events("cache_entry_rejected", "cache_entries_still_rejected", "cache_entries_valid_again")
"""An entry of a shared store failed its signature check or could not be decoded."""
REFRESH = Events("cache_refresh_failed", "cache_refreshes_still_failing", "cache_refreshes_recovered")
"""A background refresh raised: the entry it would have replaced stays."""
SERVED_ON_ERROR = Events("cache_served_on_error", "cache_still_served_on_error", "cache_computes_again")
"""The computation raised and a stale entry was served instead (stale_if_error)."""
UNSTORABLE = Events(
    "cache_value_not_storable", "cache_values_still_not_storable", "cache_values_storable_again"
)
"""The cache's serializer cannot encode a value, or gives back another one: not stored."""


class FaultLog:
    """One kind of fault, as seen by one decorated function (or one serializer)."""

    __slots__ = ("_burst", "_clock", "_events", "_function", "_last_logged", "_remind_seconds", "failing")

    def __init__(self, function: str, *, events: Events = BACKEND, remind_seconds: float = 60.0) -> None:
        self.failing = False  # read on the hot path: one attribute, no call
        self._events = events
        self._function = function
        self._remind_seconds = remind_seconds
        self._clock = time.monotonic
        self._burst = 0
        self._last_logged = 0.0

    def failed(self, operation: str, error: BaseException) -> None:
        """Note one fault in *operation* (the caller computes anyway)."""
        now = self._clock()
        self._burst += 1
        if not self.failing:
            self.failing = True
            self._last_logged = now
            _log.error(
                self._events.first,
                function=self._function,
                operation=operation,
                error=repr(error),
                exc_info=error,
            )
        elif now - self._last_logged >= self._remind_seconds:
            self._last_logged = now
            _log.error(
                self._events.reminder,
                function=self._function,
                operation=operation,
                error=repr(error),
                failed_operations=self._burst,
            )

    def recovered(self) -> None:
        """Note a success; logs the end of a burst."""
        if self.failing:
            _log.info(self._events.end, function=self._function, failed_operations=self._burst)
            self.failing = False
            self._burst = 0
