"""The call engine of ``@vix_cached``: what every store shares.

One call, whatever the store: the status of its arguments is recorded and the
TTL decided in one step of the breaker (``Engine.prepare``); a TTL of 0
bypasses the store (nothing is served from it, and the value computed replaces
its entry, ``through_ttl``); else a stored entry is served while ``fresh``; else
the function is computed, shared with concurrent callers of the key
(``Engine.compute`` / ``compute_async``), stored, and the call counted under
exactly one ``CacheInfo`` field.

A store adapter (``vix_ttl._mapping`` for in-process mappings, the aiocache
one at the edge) subclasses ``Engine`` with its lookup and its write. Adapters
for other kinds of cache are found through the ``vix_ttl.stores`` entry points
(``StoreAdapter``): the core never imports an integration.
"""

from __future__ import annotations

import inspect
import itertools
import math
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple, Protocol, TypeGuard

from cachetools.keys import hashkey

from vix_ttl._budget import Budget
from vix_ttl._checks import check_ttl
from vix_ttl._coalesce import own_copy, running
from vix_ttl._faults import SERVED_ON_ERROR as SERVED_ON_ERROR_EVENTS
from vix_ttl._faults import FaultLog
from vix_ttl._refresh import Refreshes
from vix_ttl._signing import Signer
from vix_ttl._stale import NO_ALLOWANCE, Allowance, Stale
from vix_ttl.breaker import VIXCircuitBreaker
from vix_ttl.status import VixStatus

__all__ = [
    "BYPASS",
    "COALESCED",
    "EARLY",
    "ERROR",
    "FROM_ANOTHER_PROCESS",
    "HIT",
    "MISS",
    "OUTCOMES",
    "REJECTED",
    "SERVED_ON_ERROR",
    "SERVED_STALE",
    "STALE",
    "CacheInfo",
    "Compute",
    "Engine",
    "Entry",
    "Options",
    "Raised",
    "StoreAdapter",
    "TTLArg",
    "cached_functions",
    "fresh",
]

TTLArg = float | Callable[..., float]
"""A base TTL: seconds (``inf``: never expires), or a callable of the call's arguments."""


class CacheInfo(NamedTuple):
    """What happened to each call; every call counts under exactly one field.

    Read it by field name: fields are added between releases.
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
    """Joined another call's computation of the same key."""
    errors: int
    """The cache backend failed (or could not store the value): computed anyway."""
    rejected: int
    """An entry of a shared store failed its signature check or could not be decoded: computed."""
    served_stale: int
    """An entry past its fresh TTL, within ``stale_while_revalidate``: served while one refresh runs."""
    served_on_error: int
    """The computation raised; an entry within ``stale_if_error`` was served instead."""

    @property
    def calls(self) -> int:
        """All the calls counted."""
        return sum(self)


# The CacheInfo fields, as the outcomes of a call; EARLY is a hit that starts an early refresh.
HIT, MISS, STALE, BYPASS, COALESCED, ERROR, REJECTED, SERVED_STALE, SERVED_ON_ERROR = CacheInfo._fields
EARLY = "early"


class Entry(NamedTuple):
    """What an in-process store holds for one key."""

    value: Any
    stored_at: float
    ttl: float
    delta: float = 0.0
    """How long its computation took (early refresh weighs it)."""
    finished: int = 0
    """When its computation ended, among this process's computations (``finish_order``)."""


def fresh(age: float, stored_ttl: float, decided_ttl: float) -> bool:
    """The freshness rule: an entry *age* seconds old is served while ``0 <= age < min(stored, decided)``.

    An entry stored in calm with a long TTL is not served during panic, one
    stored in panic for 5 s is not stretched when calm returns, and one stored
    "in the future" (a writer's clock ahead, a forged time) has no age to trust.
    """
    return 0 <= age < min(stored_ttl, decided_ttl)


class Compute(NamedTuple):
    """Why a call computes (its ``CacheInfo`` field), with the TTL and key to store it under,
    the entry found past its fresh TTL, if any (or a hit due an early refresh: ``EARLY``),
    and the call's status (what a learning policy files the recomputation under)."""

    outcome: str
    ttl: float
    key: Any
    stale: Stale | None = None
    status: VixStatus | None = None


@dataclass(frozen=True, slots=True)
class Options:
    """The options of one decorated function, checked and resolved at decoration time."""

    name: str
    """``module.qualname``: in logs, errors and metrics."""
    status: Callable[..., Any]
    bases: dict[VixStatus, tuple[VixStatus, TTLArg]]
    """Status -> (status, base TTL): one lookup takes a status member or its name."""
    breaker: VIXCircuitBreaker
    key: Callable[..., Hashable] | None
    namespace: str
    coalesce: bool
    signer: Signer | None
    clock: Callable[[], float] | None
    """None: the store's default (the breaker's clock in-process, wall-clock on shared stores)."""
    stale_while_revalidate: Allowance = NO_ALLOWANCE
    stale_if_error: Allowance = NO_ALLOWANCE
    early_refresh: float = 0.0
    """XFetch's beta; 0: off."""
    records: bool = True
    """Whether each call records its status; False: statuses are recorded elsewhere, when an
    entry is stored, and a call is only judged (the ASGI middleware's ``X-Vix-Status``)."""
    entry_ttl: Callable[[Any, float], float] | None = None
    """The TTL a computed value is stored with, from the value and the TTL decided for its
    call (None: that TTL); 0 stores nothing."""
    stale_ok: Callable[[Any], bool] | None = None
    """Whether a value may be served past its fresh TTL at all (None: every one may, within
    the allowances): an HTTP response that says ``must-revalidate`` may not."""


class StoreAdapter(Protocol):
    """How a kind of cache becomes a store of ``@vix_cached`` (entry points ``vix_ttl.stores``)."""

    def accepts(self, cache: object) -> bool:
        """Whether *cache* is of this adapter's kind."""

    def engine(self, cache: Any, options: Options, *, is_async: bool) -> Engine:
        """The engine of one decorated function over *cache* (errors: at decoration time)."""


OUTCOMES: ContextVar[list[str] | None] = ContextVar("vix_ttl_outcomes", default=None)
"""Set to a list, it receives the outcome of every call counted in this context but hits
on an in-process store (which count nothing else): how a caller learns what one call did."""

FROM_ANOTHER_PROCESS: Any = "from another process"
"""What a shared run says instead of "stored": it received another process's result."""


_Keep = Callable[[Any, float, float, int], Any]
"""Writes a computed value, given when its computation started and ended (the entry's age
counts from its end) and its ``finish_order``; True if kept, False if the store failed (a
bool, or an awaitable of one)."""

finish_order = itertools.count().__next__
"""A ticket taken as each computation ends: the order computations of this process ended in,
whatever the entry clock does (a clock stepped back, a ``FakeClock`` set back). Atomic."""


class Raised(NamedTuple):
    """A computation's exception, carried to every caller that shared the computation."""

    error: Exception
    traceback: TracebackType | None
    """Its traceback as the computation left it."""

    def raised_by(self, shared: bool) -> BaseException:
        """The exception one caller raises: the original when nobody shared the computation,
        else a copy for each caller (the original, never raised again, stays as it was)."""
        return own_copy(self.error, self.traceback) if shared else self.error


_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def cached_functions() -> dict[str, Callable[[], CacheInfo]]:
    """Every live ``@vix_cached`` function: ``module.qualname`` -> its ``cache_info`` (for exporters)."""
    return {engine.name: engine.cache_info for engine in list(_engines)}


class Engine(ABC):
    """What every store shares: from the call's arguments to (TTL, key), computing, counting.

    A store adapter adds the call itself (lookup, compute on a miss, write) and
    the two controls that act on its store.
    """

    cache: Any
    # One count per CacheInfo field, guarded by `lock`; a hit path adds to `hits` by name.
    hits: int

    def __init__(self, options: Options, *, clock: Callable[[], float], flights: Any) -> None:
        self.name = options.name
        self.breaker = options.breaker
        self._status = options.status
        self._bases = options.bases
        self._observe = options.breaker._observe if options.records else options.breaker._judge
        self._entry_ttl = options.entry_ttl
        self._user_key = options.key
        self._args_are_key = options.key is None  # without kwargs, the arguments are the key as they are
        self._clock = clock
        self._flights = flights  # None: every caller computes
        self._swr = options.stale_while_revalidate
        self._sie = options.stale_if_error
        self._stale_ok = options.stale_ok
        self._beta = options.early_refresh
        # A policy with Learned cells learns from recomputations that replace an entry.
        self._learn = options.breaker._learn if options.breaker.policy.learns else None
        self.refreshes = Refreshes(self.name, clock=clock)
        self.lock = threading.Lock()
        self._faults = FaultLog(self.name, clock=clock)
        self._served_on_error = FaultLog(self.name, events=SERVED_ON_ERROR_EVENTS, clock=clock)
        self._reset_counts()
        _engines.add(self)

    @abstractmethod
    def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """One call of the decorated function (*instance*: its ``self`` / ``cls``, or None)."""

    def direct(self, wrapped: Callable[..., Any]) -> Callable[..., Any]:
        """The call of the function outside any class, as the proxy's ``__call__`` (``self``: the proxy).

        A store may return one that skips a frame on its hit path.
        """

        def call(_proxy: object, *args: Any, **kwargs: Any) -> Any:
            return self(wrapped, None, args, kwargs)

        return call

    @abstractmethod
    def cache_clear(self) -> Any:
        """Drop every entry of this function and zero the counts."""

    @abstractmethod
    def invalidate(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Drop the entry of one call (*args* with ``self`` for methods)."""

    # -- from the call's arguments to its TTL and key -------------------------------------

    def prepare(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[float, Any, VixStatus, float]:
        """``(ttl, key, status, base_ttl)`` of one call (*args* with ``self`` for methods); recorded."""
        try:
            status = self._status(*args, **kwargs)
        except TypeError as exc:
            raise self.arity_error("status", self._status, exc, args, kwargs) from None
        try:  # a member or its name: one lookup for both (they hash alike)
            status, base = self._bases[status]
        except (KeyError, TypeError):
            status, base = self._bases[self.checked_status(status)]
        if base.__class__ is not float:  # a ttl function
            base = self.ttl_of(base, args, kwargs)
        key: Any = args if self._args_are_key and not kwargs else self.key(args, kwargs)
        return self._observe(status, base), key, status, base

    def ttl_of(self, function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
        """The base TTL a ttl function gives for one call, checked."""
        try:
            ttl = function(*args, **kwargs)
        except TypeError as exc:
            raise self.arity_error("ttl", function, exc, args, kwargs) from None
        return self.checked_ttl(ttl)

    def through_ttl(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
        """The TTL a bypassed call's value is written with: the caller's NORMAL base TTL.

        A bypass never serves a stored entry, but its value replaces it: when a short
        panic ends, the value from before it must not come back. The read rule decides
        whether the value written is ever served (not while the decision is a bypass).
        """
        base = self._bases[VixStatus.NORMAL][1]
        return base if base.__class__ is float else self.ttl_of(base, args, kwargs)

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The cache key of one call: what ``key=`` returns, else the arguments (``self`` included)."""
        if self._user_key is not None:
            try:
                return self._user_key(*args, **kwargs)
            except TypeError as exc:
                raise self.arity_error("key", self._user_key, exc, args, kwargs) from None
        return hashkey(*args, **kwargs) if kwargs else args

    def hashable(self, key: Any) -> Any:
        """*key*, or a clear error when it cannot be one."""
        try:
            hash(key)
        except TypeError as exc:
            raise TypeError(
                f"vix_cached({self.name}): the cache key must be hashable ({exc}); "
                f"pass key= to build one from these arguments"
            ) from None
        return key

    def arity_error(
        self, role: str, function: Any, error: TypeError, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TypeError:
        """*error*, raised calling the *role* callable (status, ttl, key): said plainly when it
        cannot take the call's arguments, else as it was (the callable itself raised it)."""
        try:
            inspect.signature(function).bind(*args, **kwargs)
        except TypeError as mismatch:
            name = getattr(function, "__qualname__", repr(function))
            given = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
            return TypeError(
                f"vix_cached({self.name}): the {role} function {name} cannot take the call's arguments "
                f"({given}): {mismatch}. It gets exactly what the decorated function gets (self or cls "
                f"too, for methods): give it the same parameters"
            )
        except ValueError:  # no signature to check (a builtin): the error as it was
            pass
        return error

    def checked_status(self, status: Any) -> VixStatus:
        try:
            return VixStatus.coerce(status)
        except ValueError as exc:
            raise ValueError(f"vix_cached({self.name}): the status function returned {exc}") from None

    def checked_ttl(self, ttl: Any) -> float:
        try:
            return check_ttl("ttl", ttl)
        except (TypeError, ValueError) as exc:
            raise type(exc)(
                f"vix_cached({self.name}): the ttl function returned an invalid value: {exc}"
            ) from None

    # -- computing, shared with concurrent callers of the key ----------------------------

    def compute(  # noqa: PLR0917 - the Compute's fields, and how to produce and keep the value
        self,
        key: Any,
        outcome: str,
        produce: Callable[[], Any],
        keep: _Keep,
        stale: Stale | None = None,
        status: VixStatus | None = None,
    ) -> Any:
        """Compute (shared with concurrent callers of *key*), store unless bypassing, count the call.

        A *stale* entry within ``stale_while_revalidate`` is served at once while one
        refresh runs in the background; within ``stale_if_error``, it is served
        instead of the computation's exception. *keep* takes the value and when its
        computation started and ended.
        """
        keep = self.learning(keep, stale, status)
        if self._servable(stale, self._swr) and self.refresh_behind(key, produce, keep):
            self.count(SERVED_STALE)
            return stale.value
        run = self._runner(produce, keep)
        joining = self._joining(key)
        try:
            (value, stored), led = self._fly(key, run)
        except BaseException:  # an interrupt, not the function's error: counted all the same
            self.count(COALESCED if joining else outcome)
            raise
        return self._counted(value, led, stored, outcome, stale)

    def _joining(self, key: Any) -> bool:
        """Whether a call of *key* starting now joins another's computation (how an interrupted
        one is counted)."""
        return self._flights is not None and not running(self._flights, key) and self._flights.busy(key)

    def learning(self, keep: _Keep, stale: Stale | None, status: VixStatus | None) -> _Keep:
        """*keep*, first telling a learning policy whether the value it keeps changed from *stale*'s.

        Every recomputation that replaces an entry goes through its write: in the
        foreground, in a background refresh (stale-while-revalidate, early refresh), sync
        or async; a result received from another process is not this one's to learn from.
        """
        if self._learn is None or stale is None or status is None:
            return keep
        learn, old, since = self._learn, stale.value, stale.stored_at

        def keep_and_learn(value: Any, started: float, ended: float, finished: int) -> Any:
            try:
                changed = bool(value != old)
            except Exception:  # a value that cannot be compared (an array's ==) teaches nothing
                pass
            else:
                learn(status, max(0.0, started - since), changed)
            return keep(value, started, ended, finished)

        return keep_and_learn

    def _runner(self, produce: Callable[[], Any], keep: _Keep) -> Callable[[], tuple[Any, bool]]:
        clock = self._clock

        def run() -> tuple[Any, bool]:
            started = clock()
            try:
                value = produce()
            except Exception as exc:
                return Raised(exc, exc.__traceback__), True
            return value, keep(value, started, clock(), finish_order())

        return run

    def _fly(self, key: Any, run: Callable[[], Any]) -> tuple[Any, bool]:
        """*run*'s result, shared with concurrent callers of *key* (coalescing on); whether this call led."""
        return (run(), True) if self._flights is None else self._flights.run(key, run)

    def refresh_behind(self, key: Any, produce: Callable[[], Any], keep: _Keep) -> bool:
        """Whether *key* refreshes in the background (started now, or already): a stale or early serve."""
        return self.refreshes.start(key, lambda: self._refresh(key, produce, keep))

    def _refresh(self, key: Any, produce: Callable[[], Any], keep: _Keep) -> None:
        """A background refresh: concurrent callers of *key* join it, as they join any computation."""
        (value, _), _ = self._fly(key, self._runner(produce, keep))
        if value.__class__ is Raised:
            raise value.raised_by(self._flights is not None)  # counted and logged by Refreshes

    async def compute_async(  # noqa: PLR0917 - compute's arguments, and the TTL a lease waits with
        self,
        key: Any,
        outcome: str,
        produce: Callable[[], Awaitable[Any]],
        keep: _Keep,
        stale: Stale | None = None,
        ttl: float = math.inf,
        status: VixStatus | None = None,
        budget: Budget | None = None,
    ) -> Any:
        """``compute`` for coroutine functions and asynchronous stores (*ttl*: the one decided;
        *budget*: what the call's commands have left of the store's timeout)."""
        keep = self.learning(keep, stale, status)
        if self._servable(stale, self._swr) and self.refresh_behind_async(key, produce, keep, ttl):
            self.count(SERVED_STALE)
            return stale.value
        run = self._runner_async(produce, keep)
        # A store that just failed is not asked for a lease, and a computation calling
        # itself does not wait on its own: both share in-process only.
        if outcome is not ERROR and not running(self._flights, key):
            run = self.shared(key, run, ttl, budget)
        joining = self._joining(key)
        try:
            (value, stored), led = await self._fly_async(key, run)
        except BaseException:  # a cancellation or an interrupt: counted all the same
            self.count(COALESCED if joining else outcome)
            raise
        return self._counted(value, led, stored, outcome, stale)

    def shared(
        self, key: Any, run: Callable[[], Awaitable[tuple[Any, Any]]], ttl: float, budget: Budget | None
    ) -> Callable[[], Awaitable[tuple[Any, Any]]]:
        """*run*, shared beyond this process when the store can (a lease in a shared store).

        A result from another process is served only while fresh for *ttl* (on a
        bypass, only one computed since this call began); the store's commands
        count against *budget* (None: a timeout of their own, off a caller's path).
        """
        return run

    def _runner_async(
        self,
        produce: Callable[[], Awaitable[Any]],
        keep: _Keep,
    ) -> Callable[[], Awaitable[tuple[Any, bool]]]:
        clock = self._clock

        async def run() -> tuple[Any, bool]:
            started = clock()
            try:
                value = await produce()
            except Exception as exc:
                return Raised(exc, exc.__traceback__), True
            return value, await keep(value, started, clock(), finish_order())

        return run

    async def _refresh_async(
        self,
        key: Any,
        produce: Callable[[], Awaitable[Any]],
        keep: _Keep,
        ttl: float,
    ) -> None:
        (value, _), _ = await self._fly_async(
            key, self.shared(key, self._runner_async(produce, keep), ttl, None)
        )
        if value.__class__ is Raised:
            raise value.raised_by(self._flights is not None)

    async def _fly_async(self, key: Any, run: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        """``_fly`` for coroutine functions and asynchronous stores."""
        if self._flights is None:
            return await run(), True
        return await self._flights.run(key, run)  # type: ignore[no-any-return]

    def refresh_behind_async(
        self,
        key: Any,
        produce: Callable[[], Awaitable[Any]],
        keep: _Keep,
        ttl: float,
    ) -> bool:
        """``refresh_behind`` for coroutine functions and asynchronous stores."""
        return self.refreshes.start_task(key, lambda: self._refresh_async(key, produce, keep, ttl))

    def _servable(self, stale: Stale | None, allowance: Allowance) -> TypeGuard[Stale]:
        """Whether *stale* may be served now, within *allowance*, if its value allows it at all."""
        return (
            stale is not None
            and bool(allowance)
            and stale.within(allowance, self.breaker.mode, self._clock())
            and (self._stale_ok is None or self._stale_ok(stale.value))
        )

    def _counted(self, value: Any, led: bool, stored: bool, outcome: str, stale: Stale | None) -> Any:
        """Count the call (the caller that led the computation counts why it computed), then return."""
        if value.__class__ is Raised and self._servable(stale, self._sie):
            self._served_on_error.failed("compute", value.error)
            self.count(SERVED_ON_ERROR)
            return stale.value
        if not led or stored is FROM_ANOTHER_PROCESS:
            outcome = COALESCED
        elif not stored and outcome is not BYPASS:  # a bypass's write failing: logged, still a bypass
            outcome = ERROR
        self.count(outcome)
        if value.__class__ is Raised:
            raise value.raised_by(self._flights is not None)
        self._served_on_error.recovered("compute")
        return value

    def in_flight(self, key: Any) -> int:
        """How many calls for *key* wait now on a computation another call leads."""
        return 0 if self._flights is None else int(self._flights.waiting(key))

    # -- counting ------------------------------------------------------------------------

    def count(self, outcome: str) -> None:
        """Count one call under *outcome*, a ``CacheInfo`` field."""
        with self.lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
        seen = OUTCOMES.get()
        if seen is not None:
            seen.append(outcome)

    @property
    def clock(self) -> Callable[[], float]:
        """What entry ages are measured with."""
        return self._clock

    def cache_info(self) -> CacheInfo:
        with self.lock:
            return CacheInfo(*(getattr(self, field) for field in CacheInfo._fields))

    def _reset_counts(self) -> None:
        with self.lock:
            for field in CacheInfo._fields:
                setattr(self, field, 0)
