"""What the call engine and the stores agree on: the outcomes of a call, the entries, the
freshness rule, and the ``Store`` contract a kind of cache implements.

The engine (``vix_ttl._cache.engine``) owns the algorithm; a store only reads, writes,
deletes and clears, and never sees the algorithm (dogpile's api / region split).
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from vix_ttl._coalesce import own_copy
from vix_ttl._enum import ValueEnum

if TYPE_CHECKING:
    from vix_ttl._budget import Budget
    from vix_ttl._cache.options import Function
    from vix_ttl._faults import FaultLog

__all__ = [
    "FROM_ANOTHER_PROCESS",
    "OUTCOMES",
    "CacheInfo",
    "Entry",
    "Found",
    "Keep",
    "Outcome",
    "Raised",
    "Store",
    "StoreAdapter",
    "Written",
    "fresh",
    "next_finish",
]


class Outcome(ValueEnum):
    """What happened to one call: the ``CacheInfo`` field it counts under (its value)."""

    HIT = "hits"
    MISS = "misses"
    STALE = "stale"
    BYPASS = "bypasses"
    COALESCED = "coalesced"
    ERROR = "errors"
    REJECTED = "rejected"
    SERVED_STALE = "served_stale"
    SERVED_ON_ERROR = "served_on_error"


class CacheInfo(NamedTuple):
    """What happened to each call; every call counts under exactly one outcome.

    Read it by field name: fields are added between releases. *maxsize* and *currsize*
    are the store's, when it knows them (a cachetools cache does; a server does not: None).
    """

    hits: int
    """Served from the cache."""
    misses: int
    """No entry: computed."""
    stale: int
    """An entry too old for the TTL decided now (or the one it was stored with): computed."""
    bypasses: int
    """The policy bypassed the cache (TTL 0): computed, nothing served; the value replaces the entry."""
    coalesced: int
    """Joined another call's computation of the same key (in this process or another)."""
    errors: int
    """The cache backend failed (or could not store the value): computed anyway."""
    rejected: int
    """An entry of a shared store failed its signature check or could not be decoded: computed."""
    served_stale: int
    """An entry past its fresh TTL, within ``stale_while_revalidate``: served while one refresh runs."""
    served_on_error: int
    """The computation raised; an entry within ``stale_if_error`` was served instead."""
    maxsize: int | None = None
    """How many entries the store holds at most (None: not known, or unbounded)."""
    currsize: int | None = None
    """How many entries it holds now (None: not known)."""

    @property
    def counts(self) -> dict[str, int]:
        """Calls per outcome, by field name (the store's sizes left out)."""
        return {outcome.value: getattr(self, outcome) for outcome in Outcome}

    @property
    def calls(self) -> int:
        """All the calls counted."""
        return sum(self.counts.values())


class Entry(NamedTuple):
    """What an in-process store holds for one key."""

    value: Any
    stored_at: float
    ttl: float
    delta: float = 0.0
    """How long its computation took (early refresh weighs it)."""
    finished: int = 0
    """When its computation ended, among this process's computations (``next_finish``)."""


class Found(NamedTuple):
    """An entry a store read: fresh (a hit), or past its fresh TTL and kept for an allowance."""

    value: Any
    stored_at: float
    age: float
    fresh_for: float
    """Its fresh TTL: ``min(stored, decided)``."""
    delta: float


def fresh(age: float, stored_ttl: float, decided_ttl: float) -> bool:
    """The freshness rule: an entry *age* seconds old is served while ``0 <= age < min(stored, decided)``.

    An entry stored in calm with a long TTL is not served during panic, one
    stored in panic for 5 s is not stretched when calm returns, and one stored
    "in the future" (a writer's clock ahead, a forged time) has no age to trust.
    """
    return 0 <= age < min(stored_ttl, decided_ttl)


next_finish = itertools.count().__next__
"""A ticket taken as each computation ends: the order computations of this process ended in,
whatever the entry clock does (a clock stepped back, a ``FakeClock`` set back). Atomic."""


class Written(NamedTuple):
    """What a store may keep with a computed value besides its TTL."""

    ended: float
    """When its computation ended, on the store's clock: the entry's age counts from it."""
    delta: float
    """How long the computation took."""
    finished: int
    """Its ``next_finish`` ticket: of two values of a key, the later one stays. Tickets count
    from 0 in each process: a store whose entries outlive the process compares only those
    of one run."""
    base: float
    """The base TTL of its call."""
    status: str
    """The status of its call."""


Keep = Callable[[Any, float, float, int], Awaitable[bool]]
"""Writes a computed value, given when its computation started and ended (the entry's age
counts from its end) and its ``next_finish`` ticket: True if kept, False if the store failed."""

OUTCOMES: ContextVar[list[Outcome] | None] = ContextVar("vix_ttl_outcomes", default=None)
"""Set to a list, it receives the outcome of every call counted in this context but hits
on an in-process store (which count nothing else): how a caller learns what one call did."""

FROM_ANOTHER_PROCESS: Any = "from another process"
"""What a fleet-wide computation says instead of "stored": it received another process's result."""


class Raised(NamedTuple):
    """A computation's exception, carried to every caller that shared the computation."""

    error: Exception
    traceback: TracebackType | None
    """Its traceback as the computation left it."""

    def raised_by(self, shared: bool) -> BaseException:
        """The exception one caller raises: the original when nobody shared the computation,
        else a copy for each caller (the original, never raised again, stays as it was)."""
        return own_copy(self.error, self.traceback) if shared else self.error


class Store(Protocol):
    """A kind of cache, as the engine uses it: what ``@vix_cached`` reads and writes.

    Two stores ship: ``MappingStore`` (in-process; the engine inlines its reads into the
    hit path, for that class only: a subclass is read through ``read``) and ``SharedStore``
    (envelopes over a ``Backend``: Redis, memcached, aiocache).

    - The methods are coroutines; for a plain function's calls they must never suspend
      (the engine runs them to their end at once): a store that must wait on I/O serves
      coroutine functions only, and its adapter refuses plain ones at decoration time.
    - ``key`` applies the user's ``key=`` (``Function.call("key", ...)``) and keeps
      functions sharing a cache apart (``Function.namespace``); what it returns must be
      hashable: concurrent calls of one key are coalesced by it.
    - Every fault is the store's to log (``faults.failed`` for each failure,
      ``faults.recovered`` when an operation succeeds again: one line per burst) and to
      fail open on: a read that fails is an ``ERROR`` outcome, a write that fails returns
      False, a delete or a clear that fails drops nothing.
    """

    cache: Any
    """What the user passed as ``cache=`` (the function's ``cache`` attribute)."""
    clock: Callable[[], float]
    """What entry ages are measured with: ``Options.clock`` when given, else one that suits
    where entries live (the breaker's clock in one process; wall-clock time for entries
    other processes or later runs read)."""
    faults: FaultLog
    """The store's fault log: one line per burst of failures of one operation."""

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The key one call's entry is stored under (*args*: ``self`` first for methods)."""

    async def read(self, key: Any, ttl: float, budget: Budget | None) -> tuple[Outcome, Found | None]:
        """*key*'s entry judged for the TTL *ttl* decided now (``fresh``): ``HIT`` with it when
        fresh; ``STALE`` with it when too old but of a known age (the engine judges whether
        an allowance serves it, and compares a recomputation with it), ``STALE`` alone for
        one that must never be served (an age below 0); ``MISS``; ``ERROR`` (the store
        failed); ``REJECTED`` (an entry that is not one of vix_ttl's, forged or undecodable)."""

    async def write(self, key: Any, value: Any, ttl: float, written: Written, budget: Budget | None) -> bool:
        """Store *value* under *key* for *ttl* seconds (0: store nothing, and drop the entry it
        replaces), never over a value whose computation ended later; False if the store failed."""

    def shared(
        self, key: Any, run: Callable[[], Coroutine[Any, Any, Any]], ttl: float, budget: Budget | None
    ) -> Callable[[], Coroutine[Any, Any, Any]]:
        """*run*, coalesced beyond this process when the store can (a lease), else as it is."""

    def budget(self) -> Budget | None:
        """A new call's time for the store's commands (None: unbounded)."""

    async def delete(self, key: Any) -> bool:
        """Drop *key*'s entry (so that it is never served again); whether it was there."""

    async def clear(self) -> None:
        """Drop every entry of this function."""

    def size(self) -> tuple[int | None, int | None]:
        """``(maxsize, currsize)`` of the whole cache, as far as the store knows them (None: not known)."""


class StoreAdapter(Protocol):
    """How a kind of cache becomes a ``Store`` (entry points ``vix_ttl.stores``)."""

    def accepts(self, cache: object) -> bool:
        """Whether *cache* is of this adapter's kind."""

    def store(self, cache: Any, function: Function) -> Store:
        """The store of one decorated function over *cache* (errors: at decoration time)."""
