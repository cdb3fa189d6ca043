"""Coalescing in one process: concurrent calls for one key share one computation.

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
recursion) does not join the ongoing it runs in, which would wait on itself
forever: it computes. A context variable tells, in the thread or task (and the
tasks it starts) that runs a computation, which computations it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy as stdlib_copy
import threading
import types
import weakref
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Future
from contextvars import ContextVar
from types import TracebackType
from typing import Any

__all__ = ["AsyncCoalescer", "SharedReads", "ThreadCoalescer", "own_copy", "running"]

_RUNNING: ContextVar[frozenset[tuple[object, Hashable]]] = ContextVar("vix_ttl_running", default=frozenset())
"""The (coalescer, key) pairs whose computation this context runs."""


def running(coalescer: object, key: Hashable) -> bool:
    """Whether this thread or task runs the computation of *key* in *coalescer* (it then calls itself)."""
    return (coalescer, key) in _RUNNING.get()


def _entering(coalescer: object, key: Hashable) -> Any:
    """Mark *key* of *coalescer* as computed in this context; the token that ``_RUNNING.reset`` takes."""
    return _RUNNING.set(_RUNNING.get() | {(coalescer, key)})


def own_copy(error: BaseException, traceback: TracebackType | None) -> BaseException:
    """A copy of *error* for one more caller of the computation that raised it, with *traceback*.

    Raising one exception object from many callers makes its traceback grow with each
    raise (every raise adds its frames to the same object): a thousand coalesced
    callers formatting theirs would pay quadratic time. A copy starts from the
    computation's own frames, and keeps the type, ``args``, attributes (``__slots__``
    too), notes (a list of its own) and chained causes. A built-in exception is
    rebuilt from its arguments (its C fields: ``OSError.filename``, ``UnicodeError.reason``);
    a class of Python code is copied without running its ``__init__`` again. One that
    cannot be copied faithfully gets a stand-in: an instance of a subclass of its class
    (so ``except`` clauses still match), with the same arguments and attributes, chained
    from it.
    """
    copy = _copied(error)
    if copy is None:  # chained from the original, whose own cause and context follow it
        return _stand_in(error).with_traceback(traceback)
    copy.__cause__, copy.__context__ = error.__cause__, error.__context__
    copy.__suppress_context__ = error.__suppress_context__
    return copy.with_traceback(traceback)


def _copied(error: BaseException) -> BaseException | None:
    cls = type(error)
    try:
        if isinstance(cls.__init__, types.FunctionType):  # Python code: its state is its args and attributes
            copy = cls.__new__(cls, *error.args)
            _carry_over(error, copy)
        else:  # built in: rebuilt from its reduction, as pickle does (OSError's file names included)
            copy = stdlib_copy.copy(error)
            _carry_over(error, copy)
        if copy.args != error.args or _text(copy) != _text(error):
            return None
    except Exception:
        return None
    return copy


def _carry_over(error: BaseException, copy: BaseException) -> None:
    """Put *error*'s args, attributes and slots on *copy*; a list of notes of its own."""
    copy.args = error.args
    copy.__dict__.update(error.__dict__)
    if hasattr(error, "__notes__"):
        copy.__notes__ = list(error.__notes__)
    for klass in type(error).__mro__:
        for name in getattr(klass, "__slots__", ()):
            if name not in ("__dict__", "__weakref__") and hasattr(error, name):
                setattr(copy, name, getattr(error, name))


def _text(error: BaseException) -> str | None:
    """``str(error)``, or None when it raises (nothing to compare then)."""
    try:
        return str(error)
    except Exception:
        return None


def _stand_in(error: BaseException) -> BaseException:
    stand_in: BaseException = BaseException.__new__(_stand_in_class(type(error)), *error.args)
    with contextlib.suppress(Exception):
        _carry_over(error, stand_in)
    stand_in.__cause__, stand_in.__context__ = error, error.__context__
    return stand_in


_stand_ins: weakref.WeakKeyDictionary[type[BaseException], type[BaseException]] = weakref.WeakKeyDictionary()


def _stand_in_class(cls: type[BaseException]) -> type[BaseException]:
    """A subclass of *cls* whose instances need no construction of *cls*'s (made once per class)."""
    made = _stand_ins.get(cls)
    if made is None:
        attributes = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
        made = _stand_ins[cls] = type(cls.__name__, (cls,), attributes)
    return made


class ThreadCoalescer:
    """Share computations between threads."""

    __slots__ = ("_computing", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._computing: dict[Hashable, _ThreadComputation] = {}

    def waiting(self, key: Hashable) -> int:
        """How many callers wait on the computation of *key* now, besides the first."""
        with self._lock:
            ongoing = self._computing.get(key)
            return 0 if ongoing is None else ongoing.waiting

    def busy(self, key: Hashable) -> bool:
        """Whether *key* is being computed now."""
        return key in self._computing

    def run(self, key: Hashable, compute: Callable[[], Any]) -> tuple[Any, bool]:
        if running(self, key):  # a computation of key calling itself: it computes
            return compute(), True
        with self._lock:
            ongoing = self._computing.get(key)
            leader = ongoing is None
            if ongoing is None:
                ongoing = self._computing[key] = _ThreadComputation()
            else:
                ongoing.waiting += 1
        if not leader:
            value = ongoing.result.result()
            if ongoing.failure is not None:  # an interrupt is its own thread's: the others compute
                return self.run(key, compute)
            return value, False
        token = _entering(self, key)
        value = failure = None
        try:
            value = compute()
        except BaseException as exc:  # an interrupt: kept as it was raised, never raised again
            failure = exc
        finally:
            _RUNNING.reset(token)
        self._land(key)
        ongoing.failure = failure
        ongoing.result.set_result(value)
        if failure is not None:  # every caller raises a copy of it, this one too
            raise own_copy(failure, failure.__traceback__)
        return value, True

    def _land(self, key: Hashable) -> None:
        # Before the result is published: a caller arriving after this starts
        # a new computation rather than joining one that has ended.
        with self._lock:
            del self._computing[key]


class _ThreadComputation:
    __slots__ = ("failure", "result", "waiting")

    def __init__(self) -> None:
        self.result: Future[Any] = Future()
        self.failure: BaseException | None = None
        self.waiting = 0


class AsyncCoalescer:
    """Share computations between asyncio tasks of one event loop.

    The computation runs as a task of its own and every caller, the first
    included, waits on a future of its own: a caller that is cancelled
    cancels only its future, never the computation the others wait for. When
    the computation ends, one callback hands its outcome to every waiter (a
    fan-out, where ``asyncio.shield`` per caller would take two loop rounds
    and four callbacks each: a panic stampede is thousands of callers).
    """

    __slots__ = ("_computing",)

    def __init__(self) -> None:
        self._computing: dict[Hashable, _Computation] = {}

    def waiting(self, key: Hashable) -> int:
        """How many callers wait on the computation of *key* now, besides the first."""
        ongoing = self._computing.get(key)
        return 0 if ongoing is None else len(ongoing.waiters) - 1

    def busy(self, key: Hashable) -> bool:
        """Whether *key* is being computed now, in this thread's event loop."""
        ongoing = self._computing.get(key)
        return ongoing is not None and ongoing.loop is asyncio.get_running_loop()

    async def run(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        if running(self, key):  # a computation of key calling itself: it computes
            return await compute(), True
        loop = asyncio.get_running_loop()
        ongoing = self._computing.get(key)
        led = ongoing is None or ongoing.loop is not loop
        if led:
            token = _entering(self, key)  # the task copies the context as it is created
            try:
                task = asyncio.ensure_future(compute())
            finally:
                _RUNNING.reset(token)
            ongoing = _Computation(loop, task)
            self._computing[key] = ongoing
            ongoing.task.add_done_callback(lambda task: self._land(key, ongoing))
        assert ongoing is not None
        waiter: asyncio.Future[Any] = loop.create_future()
        ongoing.waiters.append(waiter)
        return await waiter, led

    def _land(self, key: Hashable, ongoing: _Computation) -> None:
        if self._computing.get(key) is ongoing:
            del self._computing[key]
        task = ongoing.task
        error = None if task.cancelled() else task.exception()  # retrieved: asyncio need not warn
        traceback = None if error is None else error.__traceback__
        for waiter in ongoing.waiters:
            if waiter.cancelled():
                continue
            if task.cancelled():
                waiter.cancel()
            elif error is not None:  # an interrupt in the computation: each caller its own copy
                waiter.set_exception(own_copy(error, traceback))
            else:
                waiter.set_result(task.result())


class _Computation:
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
