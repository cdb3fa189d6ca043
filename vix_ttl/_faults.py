"""Cache backend faults: logged once per burst, not once per call.

When Redis goes down under 1,000 requests/s, one error line per request would
bury the log. The first error of a burst is logged with its exception; while
the backend keeps failing, a reminder with the count goes out at most every
``remind_seconds``; the first success after a burst logs the recovery and how
many errors the burst had.
"""

from __future__ import annotations

import time

import structlog

__all__ = ["FaultLog"]

_log = structlog.get_logger("vix_ttl")


class FaultLog:
    """The fault state of one cache backend as seen by one decorated function."""

    __slots__ = ("_burst", "_clock", "_function", "_last_logged", "_remind_seconds", "failing")

    def __init__(self, function: str, *, remind_seconds: float = 60.0) -> None:
        self.failing = False  # read on the hot path: one attribute, no call
        self._function = function
        self._remind_seconds = remind_seconds
        self._clock = time.monotonic
        self._burst = 0
        self._last_logged = 0.0

    def failed(self, operation: str, error: BaseException) -> None:
        """Note one failed backend operation (the caller computes anyway)."""
        now = self._clock()
        self._burst += 1
        if not self.failing:
            self.failing = True
            self._last_logged = now
            _log.error(
                "cache_backend_failed",
                function=self._function,
                operation=operation,
                error=repr(error),
                exc_info=error,
            )
        elif now - self._last_logged >= self._remind_seconds:
            self._last_logged = now
            _log.error(
                "cache_backend_still_failing",
                function=self._function,
                operation=operation,
                error=repr(error),
                failed_operations=self._burst,
            )

    def recovered(self) -> None:
        """Note that the backend answered again; logs the end of a burst."""
        if self.failing:
            _log.info("cache_backend_recovered", function=self._function, failed_operations=self._burst)
            self.failing = False
            self._burst = 0
