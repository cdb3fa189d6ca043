"""Background refreshes: one per key per process at a time, a cap on how many run at once.

A refresh recomputes an entry for callers who are not waiting (they were served a
stale or a still-fresh value). Threads run them for sync functions, on one shared
pool; tasks of the running event loop for coroutine functions, kept by strong
reference until they end (asyncio keeps only weak ones), and cancelled with the
loop's other tasks when it closes (``asyncio.run`` does). A refresh that fails is
logged once per burst and counted; the entry it would have replaced stays. One whose
computation declines to keep its answer (``NotKept``) did not fail.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from vix_ttl._faults import REFRESH, FaultLog

__all__ = ["MAX_REFRESHES", "NotKept", "Refreshes", "as_task", "in_thread"]

MAX_REFRESHES = 32
"""Refreshes one decorated function runs at once, at most; more keys wait for a later call."""


class NotKept(BaseException):
    """Raised by a computation whose answer is not to be kept (nor replaced by a stale entry):
    no failure. A ``BaseException``, so that ``stale_if_error`` does not serve one in its place."""


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _threads() -> ThreadPoolExecutor:
    global _pool  # noqa: PLW0603 - one pool for the process, made on first use
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="vix_ttl-refresh")
        return _pool


def in_thread(refresh: Callable[[], Any]) -> Callable[[], Future[Any]]:
    """How ``Refreshes.start`` runs a plain function's refresh: in a thread of the shared pool."""
    return lambda: _threads().submit(refresh)


def as_task(refresh: Callable[[], Awaitable[Any]]) -> Callable[[], asyncio.Future[Any]]:
    """How ``Refreshes.start`` runs a coroutine function's refresh: a task of the running loop."""
    return lambda: asyncio.ensure_future(refresh())


class Refreshes:
    """The background refreshes of one decorated function."""

    def __init__(
        self, name: str, *, limit: int = MAX_REFRESHES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = limit
        self._running: dict[Hashable, Future[Any] | asyncio.Future[Any]] = {}
        self._lock = threading.Lock()
        self.failures = 0
        self._log = FaultLog(name, events=REFRESH, clock=clock)

    def start(self, key: Hashable, launch: Callable[[], Future[Any] | asyncio.Future[Any]]) -> bool:
        """Whether *key* is refreshing: already, or by what *launch* starts now (``in_thread``,
        ``as_task``). False when the cap is reached (or the interpreter shuts down): the
        caller computes."""
        with self._lock:
            if key in self._running:
                return True
            if len(self._running) >= self._limit:
                return False
            try:
                running = launch()
            except RuntimeError:  # "cannot schedule new futures after interpreter shutdown"
                return False
            self._running[key] = running
        running.add_done_callback(lambda done: self._land(key, done))
        return True

    def running(self) -> int:
        """How many refreshes run now."""
        with self._lock:
            return len(self._running)

    def _land(self, key: Hashable, done: Future[Any] | asyncio.Future[Any]) -> None:
        with self._lock:
            if self._running.get(key) is done:
                del self._running[key]
        if done.cancelled():
            return
        error = done.exception()
        if error is None or isinstance(error, NotKept):
            self._log.recovered("refresh")
            return
        with self._lock:
            self.failures += 1
        self._log.failed("refresh", error)
