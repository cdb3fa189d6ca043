"""Coalescing across processes: a lease in the shared store, held while one process computes.

The first process to ``add`` a key's lease computes and writes the entry; the
others poll for that entry and receive it. The lease holds up when the backend
is slow or failing:

- the holder renews its lease while it computes (every half lease, writing a new
  value: ``<token>.<n>``), so a computation longer than the lease is still
  computed once, and its waiters see it is alive;
- a lease that is gone without an entry (its holder died) is taken over by exactly
  one waiter (``add``); the others wait on the new holder;
- a lease that shows no sign of life for one lease time (a holder stuck or dead, a
  lease planted with no expiry, a value that is not a lease, or one that changes
  otherwise than a holder renews) has lapsed: one waiter swaps it for its own,
  atomically. A planted lease delays a key once, never forever, and no wait lasts
  longer than ``MAX_WAIT_SECONDS`` (a holder that renews forever, stuck, or itself
  waiting on a process that waits on it);
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
from dataclasses import dataclass
from typing import Any, Protocol

from vix_ttl._budget import Budget

__all__ = ["LEASE_SECONDS", "MAX_WAIT_SECONDS", "NOTHING", "LeaseStore", "LeaseWaitError", "under_lease"]

LEASE_SECONDS = 5.0
"""How long a lease lasts unless renewed: a holder that dies delays the others this long at most."""
FAILED_SECONDS = 1.0
"""How long a failed holder's word stays: every process waiting on it polls within it."""

MAX_WAIT_SECONDS = 12 * LEASE_SECONDS
"""The longest a process waits on another's computation of a key (it then computes): a holder
that renews forever (stuck, or waiting on this very process) never blocks a key for good."""

_POLL_SECONDS = (0.005, 0.05)  # waiters look for the holder's entry this often, first to last
_POLL_PER_WAITER = 0.001  # the longest pause grows by this much per key waited on at once,
_POLL_MOST = 0.5  # up to this
_LEASE = re.compile(r"([0-9a-f]{16})\.(\d{1,9})")  # a lease as vix_ttl writes it
_MAX_HOLDERS = 4  # holders one waiter follows: each takes over from one that died

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


async def under_lease(  # noqa: PLR0917 - the call's computation, and what it needs of the store
    store: LeaseStore,
    name: str,
    look: Callable[[Budget | None], Awaitable[Any]],
    run: Callable[[], Awaitable[tuple[Any, Any]]],
    failed: Callable[[Any], bool],
    budget: Budget,
    fault: Fault,
    *,
    look_again: bool = True,
) -> tuple[Any, Any]:
    """*run*'s result, or the entry another process computed meanwhile (``(value, None)``).

    *look* reads the entry this call may receive (``NOTHING`` if none; faults
    raise) within the budget it is given; *run* computes and writes it, giving
    ``(value, stored)``; *failed* tells a result that is the computation's failure.
    *look_again*: a process that takes the lease at once looks once more (the last
    holder may have just written); a bypass does not, since it serves no entry
    written before it began.

    Polls are not charged to the call's budget (a slow but healthy server would
    use it up while a long computation runs elsewhere): each gets a timeout of its
    own, and one that fails ends the wait and the budget (a hung server costs the
    call one timeout in all).
    """
    lease = _Lease(store, name, _Holder(secrets.token_hex(8)), look, run, failed, budget, fault)
    try:
        taken = await store.add(name, lease.mine.value, LEASE_SECONDS, budget)
    except Exception as exc:  # the store fails: compute without a lease
        fault(exc)
        return await run()
    if taken:
        return await lease.hold(look_again=look_again)
    _Waiting.count += 1
    try:
        return await lease.wait()
    finally:
        _Waiting.count -= 1


@dataclass(frozen=True, slots=True)
class _Lease:
    """One call's computation under the lease *name*: ``under_lease``'s arguments, and this
    process's lease value (*mine*)."""

    store: LeaseStore
    name: str
    mine: _Holder
    look: Callable[[Budget | None], Awaitable[Any]]
    run: Callable[[], Awaitable[tuple[Any, Any]]]
    failed: Callable[[Any], bool]
    budget: Budget
    fault: Fault

    async def wait(self) -> tuple[Any, Any]:
        """Wait for the holder's entry; take the lease over when it lapses; compute when told to."""
        store, name, mine, fault = self.store, self.name, self.mine, self.fault
        waiting = _Waiting(asyncio.get_running_loop().time)
        pause = _POLL_SECONDS[0]
        while True:
            await asyncio.sleep(pause)
            # Back off to the longest pause, longer the more keys this process waits on at once:
            # a cold burst of many keys must not drown the holders' own commands in polls.
            pause = min(pause * 2, max(_POLL_SECONDS[1], min(_POLL_MOST, _POLL_PER_WAITER * _Waiting.count)))
            try:
                found = await self.look(None)
                if found is not NOTHING:
                    return found, None
                held = await store.peek(name, None)
                if held is None:  # gone with no entry: its holder failed, or died
                    if await store.peek(name + _FAILED, None) in waiting.holders:
                        return await self.run()  # the holder we waited on failed: each meets its own outcome
                    taken = await store.add(name, mine.value, LEASE_SECONDS, None)  # one waiter takes it
                elif waiting.alive(held):
                    continue
                else:  # a dead or stuck holder, a planted or unreadable lease: one waiter takes it over
                    taken = await store.swap(name, held, mine.value, LEASE_SECONDS, None)
                    waiting.restart()  # else another waiter took it: wait on the new holder
            except Exception as exc:  # the store fails: stop waiting on it, with nothing left to spend
                fault(exc)
                self.budget.left = 0.0
                return await self.run()
            if waiting.too_long():
                fault(LeaseWaitError(f"waited {MAX_WAIT_SECONDS:g} s on another process's computation"))
                return await self.run()
            if taken:  # a waiter taking over looks again: the holder may have written as it let go
                return await self.hold(look_again=True)

    async def hold(self, *, look_again: bool) -> tuple[Any, Any]:
        """Holding the lease: look once more (if *look_again*), compute, let go; the look, the
        write and the letting go within a whole timeout again.

        Renewals start at once, a half lease after the lease was taken, whatever a slow
        second look or a busy event loop delays.
        """
        store, name, mine, budget, fault = self.store, self.name, self.mine, self.budget, self.fault
        renewing = asyncio.ensure_future(_renew(store, name, mine, fault))
        # The store just gave this call the lease: it answers. Every process waiting on the lease
        # waits for this call's write; were it skipped for the time the call's earlier commands
        # took (a slow, busy server), they would all compute again.
        budget.renew()
        try:
            found = NOTHING
            if look_again:
                try:
                    found = await self.look(budget)
                except Exception as exc:
                    fault(exc)
            if found is not NOTHING:
                renewing.cancel()
                await _let_go(store.drop(name, mine.value, budget), fault)
                return found, None
            result = await self.run()
        finally:
            renewing.cancel()
        if self.failed(result[0]):
            await _let_go(_fail(store, name, mine, budget), fault)
        else:
            await _let_go(store.drop(name, mine.value, budget), fault)
        return result


class LeaseWaitError(Exception):
    """A wait on another process's computation that went on too long (logged; the call computes)."""


class _Waiting:
    """What a waiter has seen of the lease it waits on: is its holder still alive?

    A holder renews every half lease, its counter one up each time; so a value that
    moves only counts as life when it is a renewal (the same token, a later count no
    sooner than that many renewals take: a waiter whose own loop was held up may miss
    some; and not sooner than a quarter lease after the last sign) or a new holder's
    first value. A lease that shows no such sign for a lease time has lapsed, however
    often it changes otherwise; and no wait lasts longer than ``MAX_WAIT_SECONDS``.
    """

    __slots__ = ("_alive_at", "_began", "_now", "_seen", "_seen_at", "holders")

    count = 0
    """How many waits this process has going now (they space their polls by it)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._began = self._alive_at = self._seen_at = now()
        self._seen: tuple[str, int] | None = None
        self.holders: set[str] = set()
        """The tokens of the holders waited on (a failed one's word names its token)."""

    def alive(self, held: str) -> bool:
        """Whether the holder of *held* is alive, as far as can be told now."""
        lease, now = _LEASE.fullmatch(held), self._now()
        if lease is not None:
            token, count = lease[1], int(lease[2])
            first = self._seen is None
            newcomer = count == 0 and token not in self.holders and len(self.holders) < _MAX_HOLDERS
            if first or newcomer:  # the lease waited on, or a new holder's first value
                self._seen, self._seen_at, self._alive_at = (token, count), now, now
                self.holders.add(token)
            elif (
                self._seen is not None and token == self._seen[0] and self._renewed(self._seen[1], count, now)
            ):
                self._seen, self._seen_at = (
                    (token, count),
                    now,
                )  # a sign of life unless too soon after the last
                if now - self._alive_at >= LEASE_SECONDS / 4:
                    self._alive_at = now
        return now - self._alive_at < LEASE_SECONDS

    def _renewed(self, seen: int, count: int, now: float) -> bool:
        """Whether the holder seen at count *seen* could have renewed up to *count* by *now*:
        renewals come a half lease apart (a quarter, given the latency of either side)."""
        renewals = count - seen
        return renewals > 0 and now - self._seen_at >= (renewals - 1) * LEASE_SECONDS / 4

    def restart(self) -> None:
        self._alive_at = self._now()

    def too_long(self) -> bool:
        return self._now() - self._began >= MAX_WAIT_SECONDS


class _Holder:
    """This process's lease value: its token and how often it was renewed."""

    __slots__ = ("renewals", "token", "value")

    def __init__(self, token: str) -> None:
        self.token, self.renewals = token, 0
        self.value = f"{token}.0"


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
