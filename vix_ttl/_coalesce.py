"""In-flight sharing: concurrent calls for one key share one computation.

This is the backend protection that works from the first second of a panic,
before the breaker has seen enough to step up: a thousand callers of the hot
key during a bypass make one computation, not a thousand.

``run(key, compute)`` returns ``(value, joined)``; *joined* is true for the
callers that waited on another caller's computation. An exception raised by
the computation reaches every caller that shared it; nothing is kept of it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Future
from typing import Any

__all__ = ["AsyncFlights", "NoFlights", "NoFlightsAsync", "ThreadFlights"]


class ThreadFlights:
    """Share computations between threads."""

    __slots__ = ("_flights", "_lock", "_waiting")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, Future[Any]] = {}
        self._waiting: dict[Hashable, int] = {}

    def waiting(self, key: Hashable) -> int:
        """How many callers wait on the computation of *key* now."""
        with self._lock:
            return self._waiting.get(key, 0)

    def run(self, key: Hashable, compute: Callable[[], Any]) -> tuple[Any, bool]:
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = Future()
                self._waiting[key] = 0
            else:
                self._waiting[key] += 1
        if not leader:
            return flight.result(), True
        try:
            value = compute()
        except BaseException as exc:
            self._land(key)
            flight.set_exception(exc)
            raise
        self._land(key)
        flight.set_result(value)
        return value, False

    def _land(self, key: Hashable) -> None:
        # Before the result is published: a caller arriving after this starts
        # a new computation rather than joining one that has ended.
        with self._lock:
            del self._flights[key]
            del self._waiting[key]


class AsyncFlights:
    """Share computations between asyncio tasks of one event loop.

    The computation runs as a task of its own, so a caller that is cancelled
    does not cancel it for the others.
    """

    __slots__ = ("_flights", "_waiting")

    def __init__(self) -> None:
        self._flights: dict[Hashable, asyncio.Task[Any]] = {}
        self._waiting: dict[Hashable, int] = {}

    def waiting(self, key: Hashable) -> int:
        """How many callers wait on the computation of *key* now."""
        return self._waiting.get(key, 0)

    async def run(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        flight = self._flights.get(key)
        if flight is not None and flight.get_loop() is asyncio.get_running_loop():
            self._waiting[key] += 1
            return await asyncio.shield(flight), True
        task: asyncio.Task[Any] = asyncio.ensure_future(compute())
        self._flights[key] = task
        self._waiting[key] = 0
        task.add_done_callback(lambda done: self._land(key, done))
        return await asyncio.shield(task), False

    def _land(self, key: Hashable, task: asyncio.Task[Any]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
            del self._waiting[key]
        if not task.cancelled():
            task.exception()  # retrieved: the callers saw it, asyncio need not warn


class NoFlights:
    """``coalesce=False`` for sync functions: every caller computes."""

    __slots__ = ()

    def run(self, key: Hashable, compute: Callable[[], Any]) -> tuple[Any, bool]:
        return compute(), False


class NoFlightsAsync:
    """``coalesce=False`` for async functions: every caller computes."""

    __slots__ = ()

    async def run(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        return await compute(), False
