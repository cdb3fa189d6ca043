"""The one call algorithm of ``@vix_cached``, whatever the store.

status -> key -> record and decide (one step of the breaker) -> lookup -> fresh? -> hit;
else compute (coalesced with concurrent callers of the key, in this process and, on a
shared store, in every process) -> write -> count, under exactly one ``Outcome``. A TTL of
0 bypasses the store: nothing is served from it, and the value computed replaces its entry.

Written once, as coroutines: a coroutine function's call awaits them, a plain function's
call runs them to the end at once (``drive``: nothing in them suspends but the function's
own awaits, and a plain function has none). The in-process hit is the one path written out
by hand (``_hit_path``), top to bottom in one frame; tests/test_properties.py proves it
agrees with ``prepare`` and ``MappingStore.read``.
"""

from __future__ import annotations

import functools
import operator
import threading
import weakref
from collections.abc import Callable, Coroutine
from types import CoroutineType
from typing import Any, NamedTuple, TypeGuard

from vix_ttl._budget import Budget
from vix_ttl._cache.api import (
    FROM_ANOTHER_PROCESS,
    OUTCOMES,
    CacheInfo,
    Entry,
    Keep,
    Outcome,
    Raised,
    Store,
    Written,
    next_finish,
)
from vix_ttl._cache.options import Function
from vix_ttl._coalesce import AsyncCoalescer, ThreadCoalescer, running
from vix_ttl._faults import SERVED_ON_ERROR as SERVED_ON_ERROR_EVENTS
from vix_ttl._faults import FaultLog
from vix_ttl._refresh import Refreshes, as_task, in_thread
from vix_ttl._stale import Allowance, Expired, early_refresh_due
from vix_ttl._stores.mapping import MappingStore
from vix_ttl.status import VixStatus

__all__ = ["Computation", "Engine", "cached_functions", "drive"]

HIT, MISS, STALE, BYPASS = Outcome.HIT, Outcome.MISS, Outcome.STALE, Outcome.BYPASS
COALESCED, ERROR, SERVED_STALE, SERVED_ON_ERROR = (
    Outcome.COALESCED,
    Outcome.ERROR,
    Outcome.SERVED_STALE,
    Outcome.SERVED_ON_ERROR,
)
EARLY: Any = "early"
"""Not an outcome: a hit (counted already) that starts an early refresh."""


class Computation(NamedTuple):
    """Why a call computes (its outcome), the TTL decided (0: a bypass), the key, the entry
    found past its fresh TTL if any (or the hit due an early refresh), and the call's status
    and base TTL (what its value is written with, and learned under)."""

    outcome: Outcome
    ttl: float
    key: Any
    expired: Expired | None = None
    status: VixStatus | None = None
    base: float = 0.0


def drive(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """The result of *coroutine*, run to its end at once: a plain function's call of the algorithm.

    Nothing it awaits suspends (a plain function's computation and an in-process store
    never do): its first step is its last.
    """
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    except RuntimeError as error:
        # A coroutine turns a StopIteration it raises into a RuntimeError (PEP 479): the
        # plain function raised it, and its caller catches it as it would without the cache.
        if isinstance(error.__cause__, StopIteration) and str(error) == "coroutine raised StopIteration":
            raise error.__cause__.with_traceback(error.__cause__.__traceback__) from None
        raise
    coroutine.close()
    raise RuntimeError("vix_ttl: a synchronous call suspended (an awaitable in a sync function's path)")


_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def cached_functions() -> dict[str, Callable[[], CacheInfo]]:
    """Every live ``@vix_cached`` function: ``module.qualname`` -> its ``cache_info`` (for exporters)."""
    return {engine.name: engine.cache_info for engine in list(_engines)}


class _Method(NamedTuple):
    """A method's call (or a static method's) going through the hit path, which sees its
    arguments as the callables do (``self`` / ``cls`` first); the function is computed
    without them: wrapt hands it bound."""

    wrapped: Callable[..., Any]
    bound: int
    """1 when the hit path's arguments start with the instance the function is bound to."""


class _Pending(NamedTuple):
    """What the hit path of a coroutine function hands back on a miss: the computation to await."""

    computation: Coroutine[Any, Any, Any]


async def _settled(served: Any) -> Any:
    """A coroutine function's method call: the hit path's value, or its computation awaited."""
    return served if served.__class__ is not _Pending else await served.computation


def _with(instance: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The arguments the callables (status, ttl, key) get: ``self`` / ``cls`` first for methods."""
    return args if instance is None else (instance, *args)


class Engine:
    """One decorated function over its store: its calls, its counts, its controls."""

    # One count per CacheInfo field, guarded by `lock`; the hit path adds to `hits` by name.
    hits: int

    def __init__(self, function: Function, store: Store) -> None:
        options = function.options
        self.name = function.name
        self.breaker = function.breaker
        self.store = store
        self.cache = store.cache
        self.clock = store.clock
        self._function = function
        self._sync = not function.is_async
        self._status = options.status
        self._bases = options.bases
        self._observe = self.breaker.observe if options.records else self.breaker.ttl_for
        self._entry_ttl = options.entry_ttl
        self._swr, self._sie = options.stale_while_revalidate, options.stale_if_error
        self._stale_ok = options.stale_ok
        self._same = options.same or operator.eq
        self._beta = options.early_refresh
        # A policy with Learned cells learns from every recomputation, and gives its key's TTL.
        self._learn = self.breaker.learn if self.breaker.policy.learns else None
        coalescer = ThreadCoalescer if self._sync else AsyncCoalescer
        self._coalescer: Any = coalescer() if options.coalesce else None
        self.refreshes = Refreshes(self.name, clock=self.clock)
        self.lock = threading.Lock()
        self._served_on_error = FaultLog(self.name, events=SERVED_ON_ERROR_EVENTS, clock=self.clock)
        self._reset_counts()
        _engines.add(self)

    # -- the call ---------------------------------------------------------------------------

    def direct(self, wrapped: Callable[..., Any]) -> Callable[..., Any]:
        """The call of the function outside any class, as the proxy's ``__call__`` (its first
        argument: the proxy). Methods call ``__call__``, through the same path."""
        if self.store.__class__ is not MappingStore:  # a subclass may read otherwise: its own read
            through = self._call
            if self._sync:  # a store whose reads and writes never suspend: run to the end at once

                def call_sync(_proxy: object, *args: Any, **kwargs: Any) -> Any:
                    return drive(through(wrapped, None, args, kwargs))

                return call_sync

            async def call_async(_proxy: object, *args: Any, **kwargs: Any) -> Any:
                return await through(wrapped, None, args, kwargs)

            return call_async
        hit = self._hot = self._hit_path(self.store, wrapped)
        if self._sync:
            return hit

        async def call(_proxy: object, *args: Any, **kwargs: Any) -> Any:
            served = hit(_proxy, *args, **kwargs)
            return served if served.__class__ is not _Pending else await served.computation

        return call

    def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """One call of the decorated method (*instance*: its ``self`` / ``cls``, or None)."""
        if self.store.__class__ is not MappingStore:
            called = self._call(wrapped, instance, args, kwargs)
            return drive(called) if self._sync else called
        served = self._hot(_Method(wrapped, instance is not None), *_with(instance, args), **kwargs)
        return served if self._sync else _settled(served)

    def prepare(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[float, Any, VixStatus, float]:
        """``(ttl, key, status, base_ttl)`` of one call (*args* with ``self`` for methods); recorded."""
        function = self._function
        status = function.call("status", self._status, args, kwargs)
        try:  # a member or its name: one lookup for both (they hash alike)
            status, base = self._bases[status]
        except (KeyError, TypeError):
            status, base = self._bases[function.checked_status(status)]
        if base.__class__ is not float:  # a ttl function
            base = function.ttl_of(base, args, kwargs)
        return self._observe(status, base), self.store.key(args, kwargs), status, base

    def through_ttl(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
        """The TTL a bypassed call's value is written with: the caller's NORMAL base TTL.

        A bypass never serves a stored entry, but its value replaces it: when a short
        panic ends, the value from before it must not come back. The read rule decides
        whether the value written is ever served (not while the decision is a bypass).
        """
        base = self._bases[VixStatus.NORMAL][1]
        return base if base.__class__ is float else self._function.ttl_of(base, args, kwargs)

    async def _call(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """A call through the store's ``read``: status -> key -> decide -> lookup -> fresh -> compute."""
        # wrapt hands a method bound: it is called with its own arguments, while the callables
        # (status, ttl, key) see self / cls first.
        produce = functools.partial(wrapped, *args, **kwargs)
        args = _with(instance, args)
        ttl, key, status, base = self.prepare(args, kwargs)
        # A hung backend costs a call one timeout in all: every command gets what the others left.
        budget = self.store.budget()
        why = Computation(BYPASS, ttl, key, None, status, base)
        if ttl:
            outcome, found = await self.store.read(key, ttl, budget)
            expired = None if found is None else Expired(found.value, found.stored_at, found.fresh_for)
            if found is not None and outcome is HIT:
                self.count(HIT)
                if self._beta and early_refresh_due(found.fresh_for - found.age, found.delta, self._beta):
                    # written in the background, within a timeout of its own
                    early = Computation(EARLY, ttl, key, expired, status, base)
                    await self.compute(
                        early, produce, self._keeper(early, args, kwargs, self.store.budget()), None
                    )
                return found.value
            why = Computation(outcome, ttl, key, expired, status, base)
        return await self.compute(why, produce, self._keeper(why, args, kwargs, budget), budget)

    def _hit_path(self, store: MappingStore, wrapped: Callable[..., Any]) -> Callable[..., Any]:
        """The call over an in-process store, as the proxy's ``__call__``: a fresh entry's value
        (a hit), else the computation (a coroutine function's: a coroutine to await).

        Status -> key -> record and decide -> lookup -> freshness, top to bottom in one
        frame: ``prepare`` and the store's ``read`` written out, over local names (a call
        and attribute reads here cost a fifth of a hit).
        """
        engine, function, status_of, bases, observe = (
            self,
            self._function,
            self._status,
            self._bases,
            self._observe,
        )
        clock, lock, cache, hashable = store.clock, store.lock, store.cache, store.hashable
        args_are_key = store.prefix is None and function.options.key is None
        beta, entry_class, miss, faults, outdated = (
            self._beta,
            Entry,
            self._miss,
            store.faults,
            store.outdated,
        )
        # One reading of the clock serves the breaker and the entry's age when they share it.
        breaker_clock = None if clock is self.breaker.clock else self.breaker.clock

        def call(caller: object, *args: Any, **kwargs: Any) -> Any:
            try:
                status = status_of(*args, **kwargs)
            except TypeError as exc:  # free until raised
                raise function.arity_error("status", status_of, exc, args, kwargs) from None
            try:  # a member or its name: one lookup for both (they hash alike)
                status, base = bases[status]
            except (KeyError, TypeError):
                status, base = bases[function.checked_status(status)]
            if base.__class__ is not float:  # a ttl function
                base = function.ttl_of(base, args, kwargs)
            key: Any = args if args_are_key and not kwargs else store.key(args, kwargs)
            now = clock()
            ttl = observe(status, base, now if breaker_clock is None else breaker_clock())
            if not ttl:
                return miss(
                    caller, wrapped, args, kwargs, Computation(BYPASS, 0, hashable(key), None, status, base)
                )
            lock.acquire()  # not `with`: this is the hit path, and `with` costs twice as much
            try:
                entry = cache[key]
                if entry.__class__ is not entry_class or (outdated and key in outdated):  # not vix_ttl's
                    # (a miss, overwritten), or one a later value replaced that the store kept
                    why = Computation(MISS, ttl, key, None, status, base)
                else:
                    value, stored_at, stored_ttl, delta, _ = entry
                    age, fresh_for = now - stored_at, (stored_ttl if stored_ttl < ttl else ttl)
                    if 0 <= age < fresh_for:
                        engine.hits += 1
                        if not (beta and early_refresh_due(fresh_for - age, delta, beta)):
                            return value
                        why = Computation(EARLY, ttl, key, Expired(value, stored_at, fresh_for), status, base)
                    else:
                        expired = Expired(value, stored_at, fresh_for) if age >= 0 else None
                        why = Computation(STALE, ttl, key, expired, status, base)
            except KeyError:
                why = Computation(MISS, ttl, key, None, status, base)
            except Exception as exc:
                hashable(key)  # an unhashable key is the caller's error, not the store's
                faults.failed("get", exc)
                why = Computation(ERROR, ttl, key, None, status, base)
            finally:
                lock.release()
            return miss(caller, wrapped, args, kwargs, why)

        return call

    def _miss(
        self,
        caller: object,
        wrapped: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        why: Computation,
    ) -> Any:
        """The hit path's way out: the computation of *why* (*caller*: the proxy, or a ``_Method``)."""
        if caller.__class__ is _Method:
            wrapped, own = caller.wrapped, args[caller.bound :]
        else:
            own = args
        produce = functools.partial(wrapped, *own, **kwargs)
        computed = self.compute(why, produce, self._keeper(why, args, kwargs, None), None)
        return drive(computed) if self._sync else _Pending(computed)

    def _keeper(
        self, why: Computation, args: tuple[Any, ...], kwargs: dict[str, Any], budget: Budget | None
    ) -> Keep:
        """The write of one call's value: for the TTL decided (a bypass's: ``through_ttl``),
        or the one ``entry_ttl`` gives it."""
        store, key, entry_ttl = self.store, why.key, self._entry_ttl
        ttl = why.ttl or self.through_ttl(args, kwargs)
        status = (why.status or VixStatus.NORMAL).value
        learned = self.learning(why)

        async def keep(value: Any, started: float, ended: float, finished: int) -> bool:
            kept = ttl if learned is None else learned(value, started, ended, ttl)
            kept = kept if entry_ttl is None else entry_ttl(value, kept)
            written = Written(ended, max(0.0, ended - started), finished, why.base, status)
            return await store.write(key, value, kept, written, budget)

        return keep

    # -- computing, coalesced with concurrent callers of the key ------------------------------

    async def compute(
        self, why: Computation, produce: Callable[[], Any], keep: Keep, budget: Budget | None
    ) -> Any:
        """Compute (coalesced with concurrent callers of the key), store, count the call.

        An early refresh starts in the background and serves the entry. An entry found
        past its fresh TTL is served at once while one refresh runs, within
        ``stale_while_revalidate``; within ``stale_if_error``, it is served instead of
        the computation's exception. *budget*: what the call's store commands have left.
        """
        outcome, ttl, key, expired, _, _ = why
        if outcome is EARLY:  # a hit, counted already, that refreshes ahead of its expiry
            self._refresh_behind(key, produce, keep, ttl)
            return expired.value  # type: ignore[union-attr]
        if self._servable(expired, self._swr) and self._refresh_behind(key, produce, keep, ttl):
            self.count(SERVED_STALE)
            return expired.value
        run = self._runner(produce, keep)
        # A store that just failed is not asked for a lease, and a computation calling
        # itself does not wait on its own: both are coalesced in-process only.
        if self._coalescer is not None and outcome is not ERROR and not running(self._coalescer, key):
            run = self.store.shared(key, run, ttl, budget)
        joining = self._joining(key)
        try:
            (value, stored), led = await self._coalesced(key, run)
        except BaseException:  # a cancellation or an interrupt: counted all the same
            self.count(COALESCED if joining else outcome)
            raise
        return self._counted(value, led, stored, outcome, expired)

    def _runner(
        self, produce: Callable[[], Any], keep: Keep
    ) -> Callable[[], Coroutine[Any, Any, tuple[Any, Any]]]:
        clock, sync = self.clock, self._sync

        async def run() -> tuple[Any, Any]:
            started = clock()
            try:
                value = produce() if sync else await produce()
                if sync and value.__class__ is CoroutineType:
                    value.close()
                    raise TypeError(
                        "a plain function's call returned a coroutine: vix_cached caches what a "
                        "function returns, and it saw no coroutine function (an object whose "
                        "__call__ is async, or a decorator that hides one): decorate the coroutine "
                        "function itself, or mark the wrapper with inspect.markcoroutinefunction"
                    )
            except Exception as exc:
                return Raised(exc, exc.__traceback__), True
            return value, await keep(value, started, clock(), next_finish())

        return run

    async def _coalesced(self, key: Any, run: Callable[[], Coroutine[Any, Any, Any]]) -> tuple[Any, bool]:
        """*run*'s result, shared with concurrent callers of *key* (coalescing on); whether this call led."""
        coalescer = self._coalescer
        if coalescer is None:
            return await run(), True
        if self._sync:  # threads wait on each other, blocking
            return coalescer.run(key, lambda: drive(run()))  # type: ignore[no-any-return]
        return await coalescer.run(key, run)  # type: ignore[no-any-return]

    def _joining(self, key: Any) -> bool:
        """Whether a call of *key* starting now joins another's computation (how an interrupted
        one is counted)."""
        coalescer = self._coalescer
        return coalescer is not None and not running(coalescer, key) and coalescer.busy(key)

    def _refresh_behind(self, key: Any, produce: Callable[[], Any], keep: Keep, ttl: float) -> bool:
        """Whether *key* refreshes in the background (started now, or already): in a thread for
        a plain function, a task for a coroutine function."""

        async def refresh() -> None:
            run = self._runner(produce, keep)
            if self._coalescer is not None and not running(self._coalescer, key):
                run = self.store.shared(key, run, ttl, None)  # off a caller's path: a timeout of its own
            (value, _), _ = await self._coalesced(key, run)
            if value.__class__ is Raised:
                raise value.raised_by(self._coalescer is not None)  # counted and logged by Refreshes

        launch = in_thread(lambda: drive(refresh())) if self._sync else as_task(refresh)
        return self.refreshes.start(key, launch)

    def learning(self, why: Computation) -> Callable[[Any, float, float, float], float] | None:
        """What a learning policy learns from the recomputation of *why*, as a function of its
        value, start and end and the TTL decided, which returns the TTL to keep it for (None:
        the policy learns nothing, or the call bypassed).

        Every recomputation that writes goes through it: in the foreground or a background
        refresh, sync or async; a result received from another process is not this one's to
        learn from. It is told the calls of the key it saw: the one that found the entry
        expired, if it came within one TTL of the expiry (the gap since is watched time),
        and those that joined the computation while it ran; and whether the value changed
        from the one it replaces (the options' ``same``, else ``==``; values that cannot be
        compared teach no change).
        Nothing is learned on a hit.
        """
        learn, status, expired = self._learn, why.status, why.expired
        if learn is None or not why.ttl or status is None:
            return None
        coalescer, same, key, scope = self._coalescer, self._same, why.key, (self.name, why.key)

        def learned(value: Any, started: float, ended: float, ttl: float) -> float:
            arrivals = 0 if coalescer is None else coalescer.waiting(key)
            watched = max(0.0, ended - started)
            interval = changed = None
            if expired is not None:
                gap = started - (expired.stored_at + expired.fresh_for)
                if gap >= 0:  # not an early refresh: the entry had expired, watched since
                    if gap < expired.fresh_for:
                        arrivals, watched = arrivals + 1, watched + gap
                    else:  # cut at one TTL: a cold key, or an entry a shorter decision cut short
                        watched += expired.fresh_for
                try:
                    changed = not same(value, expired.value)
                except Exception:  # a value that cannot be compared (an array's ==) teaches no change
                    pass
                else:
                    interval = max(0.0, started - expired.stored_at)
            return learn(
                scope, status, ttl, arrivals=arrivals, watched=watched, interval=interval, changed=changed
            )

        return learned

    def _servable(self, expired: Expired | None, allowance: Allowance) -> TypeGuard[Expired]:
        """Whether *expired* may be served now, within *allowance*, if its value allows it at all."""
        return (
            expired is not None
            and bool(allowance)
            and expired.within(allowance, self.breaker.mode, self.clock())
            and (self._stale_ok is None or self._stale_ok(expired.value))
        )

    def _counted(self, value: Any, led: bool, stored: Any, outcome: Outcome, expired: Expired | None) -> Any:
        """Count the call (the caller that led the computation counts why it computed), then return."""
        if value.__class__ is Raised and self._servable(expired, self._sie):
            self._served_on_error.failed("compute", value.error)
            self.count(SERVED_ON_ERROR)
            return expired.value
        if not led or stored is FROM_ANOTHER_PROCESS:
            outcome = COALESCED
        elif not stored and outcome is not BYPASS:  # a bypass's write failing: logged, still a bypass
            outcome = ERROR
        self.count(outcome)
        if value.__class__ is Raised:
            raise value.raised_by(self._coalescer is not None)
        self._served_on_error.recovered("compute")
        return value

    # -- the controls --------------------------------------------------------------------------

    def in_flight(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
        """How many calls with these arguments wait now on a computation another call leads."""
        coalescer = self._coalescer
        return 0 if coalescer is None else int(coalescer.waiting(self.store.key(args, kwargs)))

    def cache_clear(self) -> Any:
        """Drop every entry of this function and zero the counts (a coroutine for a coroutine function)."""

        async def clear() -> None:
            await self.store.clear()
            self._reset_counts()

        return drive(clear()) if self._sync else clear()

    def invalidate(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Drop the entry of one call (*args* with ``self`` for methods); whether it was there
        (a coroutine for a coroutine function)."""
        dropped = self.store.delete(self.store.key(args, kwargs))
        return drive(dropped) if self._sync else dropped

    def count(self, outcome: Outcome) -> None:
        """Count one call under *outcome*."""
        with self.lock:
            # By its plain-str value: a str subclass as an attribute name turns the instance's
            # dict into a plain one, and the hit path's `hits += 1` slows by a tenth.
            name = outcome.value
            setattr(self, name, getattr(self, name) + 1)
        seen = OUTCOMES.get()
        if seen is not None:
            seen.append(outcome)

    def cache_info(self) -> CacheInfo:
        maxsize, currsize = self.store.size()
        with self.lock:
            return CacheInfo._make(
                [*(getattr(self, outcome.value) for outcome in Outcome), maxsize, currsize]
            )

    def _reset_counts(self) -> None:
        with self.lock:
            for outcome in Outcome:
                setattr(self, outcome.value, 0)
