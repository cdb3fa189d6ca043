"""In-flight sharing: concurrent calls for one key share one computation.

This is the backend protection that works from the first second of a panic,
before the breaker has seen enough to step up: a thousand callers of the hot
key during a bypass make one computation, not a thousand.

``run(key, compute)`` returns ``(the computed value, led)``, where *led*
says whether this caller's own *compute* ran (for asyncio, an awaitable of
the pair). An exception raised by the computation reaches every caller that
shared it; nothing is kept of it. (``vix_ttl._engine`` hands over exceptions
as values, so only cancellations and interrupts travel as exceptions.)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Future
from typing import Any

__all__ = ["AsyncFlights", "ThreadFlights"]


class ThreadFlights:
    """Share computations between threads."""

    __slots__ = ("_flights", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _ThreadFlight] = {}

    def waiting(self, key: Hashable) -> int:
        """How many callers wait on the computation of *key* now, besides the first."""
        with self._lock:
            flight = self._flights.get(key)
            return 0 if flight is None else flight.waiting

    def run(self, key: Hashable, compute: Callable[[], Any]) -> tuple[Any, bool]:
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _ThreadFlight()
            else:
                flight.waiting += 1
        if not leader:
            return flight.result.result(), False
        try:
            value = compute()
        except BaseException as exc:
            self._land(key)
            flight.result.set_exception(exc)
            raise
        self._land(key)
        flight.result.set_result(value)
        return value, True

    def _land(self, key: Hashable) -> None:
        # Before the result is published: a caller arriving after this starts
        # a new computation rather than joining one that has ended.
        with self._lock:
            del self._flights[key]


class _ThreadFlight:
    __slots__ = ("result", "waiting")

    def __init__(self) -> None:
        self.result: Future[Any] = Future()
        self.waiting = 0


class AsyncFlights:
    """Share computations between asyncio tasks of one event loop.

    The computation runs as a task of its own and every caller, the first
    included, waits on a future of its own: a caller that is cancelled
    cancels only its future, never the computation the others wait for. When
    the computation ends, one callback hands its outcome to every waiter (a
    fan-out, where ``asyncio.shield`` per caller would take two loop rounds
    and four callbacks each: a panic stampede is thousands of callers).
    """

    __slots__ = ("_flights",)

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight] = {}

    def waiting(self, key: Hashable) -> int:
        """How many callers wait on the computation of *key* now, besides the first."""
        flight = self._flights.get(key)
        return 0 if flight is None else len(flight.waiters) - 1

    async def run(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        loop = asyncio.get_running_loop()
        flight = self._flights.get(key)
        led = flight is None or flight.loop is not loop
        if led:
            flight = _Flight(loop, asyncio.ensure_future(compute()))
            self._flights[key] = flight
            flight.task.add_done_callback(lambda task: self._land(key, flight))
        assert flight is not None
        waiter: asyncio.Future[Any] = loop.create_future()
        flight.waiters.append(waiter)
        return await waiter, led

    def _land(self, key: Hashable, flight: _Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        task = flight.task
        error = None if task.cancelled() else task.exception()  # retrieved: asyncio need not warn
        for waiter in flight.waiters:
            if waiter.cancelled():
                continue
            if task.cancelled():
                waiter.cancel()
            elif error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(task.result())


class _Flight:
    __slots__ = ("loop", "task", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Future[Any]) -> None:
        self.loop = loop
        self.task = task
        self.waiters: list[asyncio.Future[Any]] = []
