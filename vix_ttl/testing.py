"""Helpers for testing code that uses vix_ttl, without sleeping.

``FakeClock`` drives any ``clock=`` parameter. The pytest plugin that ships
with the package (``vix_ttl.pytest_plugin``, registered by entry point) adds
the fixtures ``vix_clock`` and ``vix_breaker``.
"""

from __future__ import annotations

import math
import threading

__all__ = ["FakeClock"]


class FakeClock:
    """A manual clock: call it for the time, move it with ``advance`` or ``set``.

    Like ``time.monotonic`` it never goes back. It is thread-safe.
    """

    __slots__ = ("_lock", "_now")

    def __init__(self, start: float = 0.0) -> None:
        self._now = _check_time("start", start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by *seconds* (>= 0) and return the new time."""
        seconds = _check_time("seconds", seconds)
        if seconds < 0:
            raise ValueError(f"FakeClock.advance: seconds must be >= 0, got {seconds!r}")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, t: float) -> float:
        """Jump to time *t*, which must not be earlier than now; return it."""
        t = _check_time("t", t)
        with self._lock:
            if t < self._now:
                raise ValueError(f"FakeClock.set: time cannot go back (now {self._now!r}, asked {t!r})")
            self._now = t
            return t

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"


def _check_time(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"FakeClock: {name} must be a finite number of seconds, got {value!r}")
    return float(value)
