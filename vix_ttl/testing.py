"""Helpers for testing code that uses vix_ttl, without sleeping.

``FakeClock`` drives any ``clock=`` parameter. The pytest plugin that ships
with the package (``vix_ttl.pytest_plugin``, registered by entry point) adds
the fixtures ``vix_clock`` and ``vix_breaker``.
"""

from __future__ import annotations

import threading

from vix_ttl._checks import check_seconds, check_time
from vix_ttl.registry import _clear as _clear_registry

__all__ = ["FakeClock", "forget_breakers"]


class FakeClock:
    """A manual clock: call it for the time, move it with ``advance`` or ``set``.

    Like ``time.monotonic`` it never goes back. It is thread-safe.
    """

    __slots__ = ("_lock", "_now")

    def __init__(self, start: float = 0.0) -> None:
        self._now = check_time("FakeClock start", start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by *seconds* (>= 0) and return the new time."""
        seconds = check_seconds("FakeClock.advance seconds", seconds)
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, t: float) -> float:
        """Jump to time *t*, which must not be earlier than now; return it."""
        t = check_time("FakeClock.set t", t)
        with self._lock:
            if t < self._now:
                raise ValueError(f"FakeClock.set: time cannot go back (now {self._now!r}, asked {t!r})")
            self._now = t
            return t

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"


def forget_breakers() -> None:
    """Empty the breaker registry, so each test gets fresh breakers by name.

    Breakers already handed out keep working; ``get_breaker`` makes new ones.
    """
    _clear_registry()
