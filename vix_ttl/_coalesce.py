"""In-flight sharing: concurrent calls for one key share one computation.

This is the backend protection that works from the first second of a panic,
before the breaker has seen enough to step up: a thousand callers of the hot
key during a bypass make one computation, not a thousand.

``run(key, compute)`` returns ``(the computed value, led)``, where *led*
says whether this caller's own *compute* ran (for asyncio, an awaitable of
the pair). An exception raised by the computation reaches every caller that
shared it; nothing is kept of it. (``vix_ttl._engine`` hands over exceptions
as values, so only cancellations and interrupts travel as exceptions, and
gives each caller its own copy: ``own_copy``.)

A computation that calls its own function with the same key (a retry by
recursion) does not join the flight it runs in, which would wait on itself
forever: it computes. A context variable tells, in the thread or task (and the
tasks it starts) that runs a computation, which flights it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Future
from contextvars import ContextVar
from types import TracebackType
from typing import Any

__all__ = ["AsyncFlights", "SharedReads", "ThreadFlights", "own_copy", "running"]

_RUNNING: ContextVar[frozenset[tuple[object, Hashable]]] = ContextVar("vix_ttl_running", default=frozenset())
"""The (flights, key) pairs whose computation this context runs."""


def running(flights: object, key: Hashable) -> bool:
    """Whether this thread or task runs the computation of *key* in *flights* (it then calls itself)."""
    return (flights, key) in _RUNNING.get()


def _entering(flights: object, key: Hashable) -> Any:
    """Mark *key* of *flights* as computed in this context; the token that ``_RUNNING.reset`` takes."""
    return _RUNNING.set(_RUNNING.get() | {(flights, key)})


def own_copy(error: BaseException, traceback: TracebackType | None) -> BaseException:
    """A copy of *error* for one more caller of the computation that raised it, with *traceback*.

    Raising one exception object from many callers makes its traceback grow with each
    raise (every raise adds its frames to the same object): a thousand coalesced
    callers formatting theirs would pay quadratic time. A copy starts from the
    computation's own frames and keeps the type, ``args``, attributes, notes and
    chained causes. ``__init__`` runs again only to fill what a built-in exception
    keeps outside ``args`` (``OSError.filename``, ``UnicodeError.reason``); a copy that
    does not read as the original (``str``) is not made: the original is handed over.
    """
    cls, given = type(error), error.args
    if isinstance(error, OSError) and error.filename is not None:  # a file name is not in args
        given = (*given[:2], error.filename, None, error.filename2)
    try:
        copy = cls.__new__(cls, *given)
        with contextlib.suppress(Exception):  # an __init__ of other parameters than args
            cls.__init__(copy, *given)
        copy.args = error.args
        copy.__dict__.update(error.__dict__)
        same = str(copy) == str(error)
    except Exception:
        same = False
    if not same:
        return error
    copy.__cause__, copy.__context__ = error.__cause__, error.__context__
    copy.__suppress_context__ = error.__suppress_context__
    return copy.with_traceback(traceback)


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
        if running(self, key):  # a computation of key calling itself: it computes
            return compute(), True
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _ThreadFlight()
            else:
                flight.waiting += 1
        if not leader:
            return flight.result.result(), False
        token = _entering(self, key)
        try:
            value = compute()
        except BaseException as exc:
            self._land(key)
            flight.result.set_exception(exc)
            raise
        finally:
            _RUNNING.reset(token)
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
        if running(self, key):  # a computation of key calling itself: it computes
            return await compute(), True
        loop = asyncio.get_running_loop()
        flight = self._flights.get(key)
        led = flight is None or flight.loop is not loop
        if led:
            token = _entering(self, key)  # the task copies the context as it is created
            try:
                task = asyncio.ensure_future(compute())
            finally:
                _RUNNING.reset(token)
            flight = _Flight(loop, task)
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


class SharedReads:
    """Concurrent reads of one key in one process: one command, every caller its result.

    A burst of callers of a cold key would otherwise send one read each before any
    of them reaches the computation they share: a thousand commands where one does,
    and more than a connection pool holds. The first caller reads, in its own task
    (no task is made: this is the hit path of shared stores); the others wait on a
    future each and get what it read. *read* hands faults back as values; if the
    first caller is cancelled, the others read again.
    """

    __slots__ = ("_reads",)

    def __init__(self) -> None:
        self._reads: dict[Hashable, tuple[asyncio.AbstractEventLoop, list[asyncio.Future[Any]]]] = {}

    async def run(self, key: Hashable, read: Callable[[], Awaitable[Any]]) -> Any:
        loop = asyncio.get_running_loop()
        pending = self._reads.get(key)
        if pending is not None and pending[0] is loop:
            waiter: asyncio.Future[Any] = loop.create_future()
            pending[1].append(waiter)
            shared = await waiter
            return await self.run(key, read) if shared is _AGAIN else shared
        pending = self._reads[key] = (loop, [])
        result: Any = _AGAIN
        try:
            result = await read()
            return result
        finally:
            if self._reads.get(key) is pending:
                del self._reads[key]
            for waiter in pending[1]:
                if not waiter.done():
                    waiter.set_result(result)


_AGAIN: Any = object()
"""What the waiters of a read get when its first caller was cancelled: read again."""
