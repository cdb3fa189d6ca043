"""Single flight across processes: a lease in the shared store, held while one process computes.

The first process to ``add`` a key's lease computes and writes the entry; the
others poll for that entry and receive it. The lease holds up when the backend
is slow or failing:

- the holder renews its lease while it computes (every half lease, writing a new
  value: ``<token>.<n>``), so a computation longer than the lease is still
  computed once, and its waiters see it is alive;
- a lease that is gone without an entry (its holder died) is taken over by exactly
  one waiter (``add``); the others wait on the new holder;
- a lease whose value does not move for one lease time (a holder stuck or dead, a
  lease planted with no expiry, a value that is not a lease) has lapsed: one waiter
  swaps it for its own, atomically. A planted lease delays a key once, never forever;
- a holder whose computation raised says so (``<lease>.failed`` holds its token for
  a second) before it lets go: the processes that waited on it compute at once,
  each meeting its own exception (or its own success), instead of taking over one
  after another, a lease apart;
- the holder lets go of its lease as soon as its entry is written, on every store:
  a recomputation never waits on a lease left by a finished computation.

Every command a caller sends counts against its one-timeout budget; a store that
fails or hangs ends the wait (the caller computes: the call never fails for it).
The store's commands are the ``LeaseStore`` protocol, so each kind of store brings
its own atomic ones (Redis scripts, memcached ``add`` / ``cas``).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from vix_ttl._budget import Budget

__all__ = ["LEASE_SECONDS", "NOTHING", "LeaseStore", "single_flight"]

LEASE_SECONDS = 5.0
"""How long a lease lasts unless renewed: a holder that dies delays the others this long at most."""
FAILED_SECONDS = 1.0
"""How long a failed holder's word stays: every process waiting on it polls within it."""

_POLL_SECONDS = (0.005, 0.05)  # waiters look for the holder's entry this often, first to last
_LEASE = re.compile(r"([0-9a-f]{16})\.\d{1,9}")  # a lease as vix_ttl writes it

NOTHING: Any = object()
"""What ``look`` returns when there is no entry to receive."""


class LeaseStore(Protocol):
    """The lease commands of a shared store. Each may raise: the caller then computes.

    *budget* bounds the command (None: one timeout of its own, for commands sent
    off the caller's path).
    """

    async def add(self, name: str, value: str, seconds: float, budget: Budget | None) -> bool:
        """Write *value* under *name* for *seconds* if nothing is there; whether it was written."""

    async def peek(self, name: str, budget: Budget | None) -> str | None:
        """The value under *name* (None: none)."""

    async def swap(self, name: str, old: str, new: str, seconds: float, budget: Budget | None) -> bool:
        """Write *new* for *seconds* if the value is still *old*, atomically; whether it was written."""

    async def put(self, name: str, value: str, seconds: float, budget: Budget | None) -> None:
        """Write *value* under *name* for *seconds*, whatever is there."""

    async def drop(self, name: str, value: str, budget: Budget | None) -> None:
        """Delete *name* if its value is still *value*."""


_FAILED = ".failed"  # the name of a failed holder's word, after its lease's

Fault = Callable[[BaseException], object]
"""Notes a failed or timed-out lease command (logged once per burst, counted)."""


async def single_flight(  # noqa: PLR0917 - the call's one flight, and what it needs of the store
    store: LeaseStore,
    name: str,
    look: Callable[[], Awaitable[Any]],
    run: Callable[[], Awaitable[tuple[Any, Any]]],
    failed: Callable[[Any], bool],
    budget: Budget,
    fault: Fault,
    *,
    look_again: bool = True,
) -> tuple[Any, Any]:
    """*run*'s result, or the entry another process computed meanwhile (``(value, None)``).

    *look* reads the entry this call may receive (``NOTHING`` if none; faults
    raise); *run* computes and writes it, giving ``(value, stored)``; *failed*
    tells a result that is the computation's failure. *look_again*: a process
    that takes the lease at once looks once more (the last holder may have just
    written); a bypass does not, since it serves no entry written before it began.
    """
    mine = _Holder(secrets.token_hex(8))
    try:
        taken = await store.add(name, mine.value, LEASE_SECONDS, budget)
    except Exception as exc:  # the store fails: compute without a lease
        fault(exc)
        return await run()
    if taken:
        return await _hold(store, name, mine, look if look_again else None, run, failed, budget, fault)
    loop = asyncio.get_running_loop()
    seen, seen_at, waited_on = None, loop.time(), set()
    pause, longest = _POLL_SECONDS
    while True:
        await asyncio.sleep(pause)
        pause = min(pause * 2, longest)
        try:
            found = await look()
            if found is not NOTHING:
                return found, None
            held = await store.peek(name, budget)
            if held is None:  # gone with no entry: its holder failed, or died
                if await store.peek(name + _FAILED, budget) in waited_on:
                    return await run()  # the holder we waited on failed: each meets its own outcome
                taken = await store.add(name, mine.value, LEASE_SECONDS, budget)  # one waiter takes it
            elif held != seen and _LEASE.fullmatch(held):  # a new holder, or a renewal: it is alive
                seen, seen_at = held, loop.time()
                waited_on.add(held.partition(".")[0])
                continue
            elif loop.time() - seen_at >= LEASE_SECONDS:
                # Unmoved for a lease time: a dead or stuck holder, a planted or unreadable lease.
                taken = await store.swap(name, held, mine.value, LEASE_SECONDS, budget)
                seen_at = loop.time()  # else another waiter took it: wait on the new holder
            else:
                continue
        except Exception as exc:  # the store fails or the budget is spent: stop waiting on it
            fault(exc)
            return await run()
        if taken:  # a waiter taking over looks again: the holder may have written as it let go
            return await _hold(store, name, mine, look, run, failed, budget, fault)


class _Holder:
    """This process's lease value: its token and how often it was renewed."""

    __slots__ = ("renewals", "token", "value")

    def __init__(self, token: str) -> None:
        self.token, self.renewals = token, 0
        self.value = f"{token}.0"


async def _hold(  # noqa: PLR0917 - single_flight's arguments, once the lease is this call's
    store: LeaseStore,
    name: str,
    mine: _Holder,
    look: Callable[[], Awaitable[Any]] | None,
    run: Callable[[], Awaitable[tuple[Any, Any]]],
    failed: Callable[[Any], bool],
    budget: Budget,
    fault: Fault,
) -> tuple[Any, Any]:
    """Holding the lease: look once more (unless *look* is None), compute, let go."""
    found = NOTHING
    if look is not None:
        try:
            found = await look()
        except Exception as exc:
            fault(exc)
    if found is not NOTHING:
        await _let_go(store.drop(name, mine.value, budget), fault)
        return found, None
    renewing = asyncio.ensure_future(_renew(store, name, mine, fault))
    try:
        result = await run()
    finally:
        renewing.cancel()
    if failed(result[0]):
        await _let_go(_fail(store, name, mine, budget), fault)
    else:
        await _let_go(store.drop(name, mine.value, budget), fault)
    return result


async def _let_go(command: Awaitable[None], fault: Fault) -> None:
    try:
        await command
    except Exception as exc:  # the lease expires on its own
        fault(exc)


async def _fail(store: LeaseStore, name: str, mine: _Holder, budget: Budget) -> None:
    """Tell the waiters this holder's computation failed, then let go of the lease."""
    await store.put(name + _FAILED, mine.token, FAILED_SECONDS, budget)
    await store.drop(name, mine.value, budget)


async def _renew(store: LeaseStore, name: str, mine: _Holder, fault: Fault) -> None:
    """Renew the lease every half lease while its holder computes, until it is lost."""
    while True:
        await asyncio.sleep(LEASE_SECONDS / 2)
        renewed = f"{mine.token}.{mine.renewals + 1}"
        try:
            if not await store.swap(name, mine.value, renewed, LEASE_SECONDS, None):
                return  # taken over meanwhile (this process was too slow to renew)
        except Exception as exc:
            fault(exc)  # tried again in half a lease; the lease lasts a whole one
            continue
        mine.value, mine.renewals = renewed, mine.renewals + 1
