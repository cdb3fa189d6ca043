"""One call's time for network commands: a hung backend costs a call one timeout in all.

A call over a shared store may read, take a lease, look again, and write. Each of
those commands is bounded by what the earlier ones left of the store's timeout, so
however the backend hangs, and wherever, the call waits on it for one timeout at
most (``Budget``). ``Commands`` runs a store's commands so: within a budget, waiting
for a free connection when the store's pool is full, and, for clients that cannot
be interrupted safely, leaving a late command to finish on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from vix_ttl._faults import UnsentError

__all__ = ["Budget", "Commands", "Slots"]

_T = TypeVar("_T")


class Budget:
    """Seconds left for one call's commands (None: unbounded)."""

    __slots__ = ("_whole", "left")

    def __init__(self, seconds: float | None) -> None:
        self.left = self._whole = seconds

    def renew(self) -> None:
        """A whole timeout again: for commands the server has just shown it answers, whose
        failure would cost more than their wait (a lease holder's write, which every process
        waiting on it waits for)."""
        self.left = self._whole

    def spend(self, since: float) -> None:
        """Take off what a command begun at ``time.monotonic()`` *since* took."""
        if self.left is not None:
            self.left -= time.monotonic() - since

    def __repr__(self) -> str:
        return f"<Budget {'unbounded' if self.left is None else f'{self.left:.3f} s'}>"


class Slots(Protocol):
    """A store's connections: ``get()`` is a semaphore of as many, for the running loop."""

    def get(self) -> asyncio.Semaphore: ...


class Commands:
    """Runs one store's commands, each within the budget of the call that sends it.

    Args:
        timeout: A call's budget (None: unbounded, in-process stores).
        slots: The store's connections, waited for when all are busy (None: the client waits).
        detach: Leave a command that outlasts its budget to finish on its own instead
            of cancelling it (aiomcache returns a cancelled command's connection to its
            pool with the reply still coming, and the next command would read it).
    """

    def __init__(self, timeout: float | None, *, slots: Slots | None = None, detach: bool = False) -> None:
        self.timeout, self._slots, self._detach = timeout, slots, detach
        self._detached: set[asyncio.Future[Any]] = set()

    def budget(self) -> Budget:
        """A call's budget: one timeout."""
        return Budget(self.timeout)

    async def run(self, command: Callable[[], Awaitable[_T]], budget: Budget | None) -> _T:
        """Run *command* within *budget* (None: one timeout of its own), its time spent."""
        budget = Budget(self.timeout) if budget is None else budget
        if budget.left is None:  # unbounded, in-process: nothing to time (nor a task to time it in)
            return await command()
        if budget.left <= 0:
            raise UnsentError("the call's timeout is spent: not sending the command")
        started = time.monotonic()
        deadline = asyncio.timeout(budget.left)
        try:
            async with deadline:
                if self._slots is None:
                    return await self._sent(command)
                slots = self._slots.get()
                await slots.acquire()  # at once while a slot is free
                try:
                    return await self._sent(command)
                finally:
                    slots.release()
        except TimeoutError:
            if not deadline.expired():
                raise
            # asyncio's own says nothing; a client that retries on its own (redis-py's cluster
            # client while the cluster is down, its reconnect backoff) ends here with its cause.
            raise TimeoutError(
                f"no answer within the call's timeout ({self.timeout:g} s): the server is down, hung, "
                f"or the client was still retrying"
            ) from None
        finally:
            budget.spend(started)

    async def _sent(self, command: Callable[[], Awaitable[_T]]) -> _T:
        if not self._detach:
            return await command()
        task = asyncio.ensure_future(command())
        self._detached.add(task)  # a strong reference until it ends, late or not
        task.add_done_callback(self._land)
        return await asyncio.shield(task)

    def _land(self, task: asyncio.Future[Any]) -> None:
        self._detached.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a late failure was already counted when it timed out
