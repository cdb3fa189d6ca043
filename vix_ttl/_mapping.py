"""The in-process store of ``@vix_cached``: a cachetools cache, or any MutableMapping.

Entries are ``Entry(value, stored_at, ttl, delta, finished)`` tuples aged on the breaker's
clock unless ``clock=`` says otherwise (so one ``FakeClock`` drives a whole
test), read and written under the engine's lock. The hit path, ``MappingEngine.hot_path``,
reads top to bottom in one frame: status -> key -> record and decide -> lookup -> freshness.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, NamedTuple

import cachetools

from vix_ttl._coalesce import AsyncFlights, ThreadFlights
from vix_ttl._engine import BYPASS, EARLY, ERROR, MISS, STALE, Compute, Engine, Entry, Options
from vix_ttl._stale import Stale, early_refresh_due

__all__ = ["MappingEngine", "mapping_engine"]


_OnMiss = Callable[[object, tuple[Any, ...], dict[str, Any], Compute], Any]


class _Method(NamedTuple):
    """A method's call (or a static method's) going through the hot path, which sees its
    arguments as the callables do (``self`` / ``cls`` first); the function is computed
    without them: wrapt hands it bound."""

    wrapped: Callable[..., Any]
    bound: int
    """1 when the hot path's arguments start with the instance the function is bound to."""


class _Pending(NamedTuple):
    """What the hit path hands a coroutine function's call on a miss: the computation to await."""

    wrapped: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    why: Compute


def _with(instance: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The arguments the callables (status, ttl, key) get: ``self`` / ``cls`` first for methods."""
    return args if instance is None else (instance, *args)


def mapping_engine(
    cache: MutableMapping[Any, Any] | None, options: Options, *, maxsize: int, is_async: bool
) -> Engine:
    """The engine of one decorated function over an in-process store.

    ``None`` makes a store of the function's own: a FIFO of *maxsize* entries
    (with TTLs this short, the oldest entry written is the next to go stale
    anyway, and a FIFO hit does not reorder, as an LRU's does). A mapping of
    the user's may be shared by other functions: its keys carry the namespace.
    """
    flights = (AsyncFlights() if is_async else ThreadFlights()) if options.coalesce else None
    store, prefix = (cachetools.FIFOCache(maxsize), None) if cache is None else (cache, options.namespace)
    engine_class = AsyncMappingEngine if is_async else SyncMappingEngine
    return engine_class(store, options, prefix=prefix, flights=flights)


class MappingEngine(Engine):
    """An in-process store behind the engine's lock."""

    _hot: Callable[..., Any]
    """The hot path of the function ``direct`` was built for (methods go through it too)."""

    def __init__(
        self, cache: MutableMapping[Any, Any], options: Options, *, prefix: str | None, flights: Any
    ) -> None:
        super().__init__(options, clock=options.clock or options.breaker.clock, flights=flights)
        self.cache = cache
        self._prefix = prefix
        self._args_are_key = self._args_are_key and prefix is None

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """As for every store; in a mapping of the user's, under this function's namespace."""
        key = super().key(args, kwargs)
        return key if self._prefix is None else (self._prefix, key)

    def hot_path(self, on_miss: _OnMiss) -> Callable[..., Any]:
        """The call, as the proxy's ``__call__``: a fresh entry's value (a hit), else ``on_miss``.

        Status -> key -> record and decide -> lookup -> freshness, top to bottom in one
        frame: ``Engine.prepare`` and ``fresh()`` written out, over local names (a call
        and attribute reads here cost a fifth of a hit). tests/test_properties.py proves
        this copy agrees with them. *on_miss* gets what the call got (its first argument:
        the proxy, or a ``_Method``) and the ``Compute`` to run, once the lock is released.
        """
        engine, status_of, bases, observe = self, self._status, self._bases, self._observe
        clock, lock, store, args_are_key = self._clock, self.lock, self.cache, self._args_are_key
        beta, entry_class = self._beta, Entry
        # One reading of the clock serves the breaker and the entry's age when they share it.
        breaker_clock = None if clock is self.breaker.clock else self.breaker.clock

        def call(caller: object, *args: Any, **kwargs: Any) -> Any:
            try:
                status = status_of(*args, **kwargs)
            except TypeError as exc:  # free until raised
                raise engine.arity_error("status", status_of, exc, args, kwargs) from None
            try:  # a member or its name: one lookup for both (they hash alike)
                status, base = bases[status]
            except (KeyError, TypeError):
                status, base = bases[engine.checked_status(status)]
            if base.__class__ is not float:  # a ttl function
                base = engine.ttl_of(base, args, kwargs)
            key: Any = args if args_are_key and not kwargs else engine.key(args, kwargs)
            now = clock()
            ttl = observe(status, base, now if breaker_clock is None else breaker_clock())
            if not ttl:  # the value is written through, for the NORMAL base TTL
                written = engine.through_ttl(args, kwargs)
                return on_miss(caller, args, kwargs, Compute(BYPASS, written, engine.hashable(key)))
            lock.acquire()  # not `with`: this is the hit path, and `with` costs twice as much
            try:
                entry = store[key]
                if entry.__class__ is not entry_class:  # not written by vix_ttl: a miss, overwritten
                    why = Compute(MISS, ttl, key)
                else:
                    value, stored_at, stored_ttl, delta, _ = entry
                    age, fresh_for = now - stored_at, (stored_ttl if stored_ttl < ttl else ttl)
                    if 0 <= age < fresh_for:
                        engine.hits += 1
                        if not (beta and early_refresh_due(fresh_for - age, delta, beta)):
                            return value
                        why = Compute(EARLY, ttl, key, Stale(value, stored_at, fresh_for), status)
                    else:
                        stale = Stale(value, stored_at, fresh_for) if age >= 0 else None
                        why = Compute(STALE, ttl, key, stale, status)
            except KeyError:
                why = Compute(MISS, ttl, key)
            except Exception as exc:
                engine.hashable(key)  # an unhashable key is the caller's error, not the store's
                engine._faults.failed("get", exc)
                why = Compute(ERROR, ttl, key)
            finally:
                lock.release()
            return on_miss(caller, args, kwargs, why)

        return call

    def keep(  # noqa: PLR0917 - the key, and what the engine's runner hands every store
        self, key: Any, value: Any, ttl: float, started: float, ended: float, finished: int
    ) -> bool:
        """Store a computed value, computed from *started* to *ended*; False if the store failed.

        Never over a value whose computation ended later (*finished*: the order they ended
        in): two computations of one key may end in one order and write in the other
        (threads, or coalescing off), and a process never serves a value older than one it
        served. A TTL of 0 keeps nothing, and drops the entry this value replaces; so does
        a store that fails to write it, if it can still drop.
        """
        if self._entry_ttl is not None:
            ttl = self._entry_ttl(value, ttl)
        entry = Entry(value, ended, ttl, max(0.0, ended - started), finished) if ttl else None
        with self.lock:
            try:
                held = self.cache.get(key)
                if held.__class__ is Entry and held.finished > finished:
                    pass  # a newer value is there already
                elif entry is None:
                    self.cache.pop(key, None)
                else:
                    self.cache[key] = entry
            except Exception as exc:
                self._faults.failed("set", exc)
                with contextlib.suppress(Exception):  # what it replaces must not be served after it
                    self.cache.pop(key, None)
                return False
        # It read the store too: a burst of failed reads ends here (the hit path never checks).
        self._faults.recovered("get")
        self._faults.recovered("set")
        return True

    def cache_clear(self) -> None:
        """Drop this function's entries: all of its own store, or its keys in a shared mapping."""
        with self.lock:
            if self._prefix is None:
                self.cache.clear()
            else:
                for key in [k for k in self.cache if isinstance(k, tuple) and k[:1] == (self._prefix,)]:
                    del self.cache[key]
        self._reset_counts()

    def invalidate(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        key = self.hashable(self.key(args, kwargs))
        with self.lock:
            try:
                return self.cache.pop(key, None) is not None
            except Exception as exc:  # a failing store: nothing to drop that could be served
                self._faults.failed("delete", exc)
                return False


class SyncMappingEngine(MappingEngine):
    def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        return self._hot(_Method(wrapped, instance is not None), *_with(instance, args), **kwargs)

    def direct(self, wrapped: Callable[..., Any]) -> Callable[..., Any]:
        miss = self._miss

        def on_miss(caller: object, args: tuple[Any, ...], kwargs: dict[str, Any], why: Compute) -> Any:
            if caller.__class__ is _Method:
                return miss(caller.wrapped, args[caller.bound :], kwargs, why)
            return miss(wrapped, args, kwargs, why)

        self._hot = self.hot_path(on_miss)
        return self._hot

    def _miss(
        self, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], why: Compute
    ) -> Any:
        outcome, ttl, key, stale, status = why

        def produce() -> Any:
            return wrapped(*args, **kwargs)

        def keep(value: Any, started: float, ended: float, finished: int) -> bool:
            return self.keep(key, value, ttl, started, ended, finished)

        if outcome is EARLY:  # a hit, already counted, that refreshes ahead of its expiry
            self.refresh_behind(key, produce, self.learning(keep, stale, status))
            return stale.value  # type: ignore[union-attr]
        return self.compute(key, outcome, produce, keep, stale, status)


class AsyncMappingEngine(MappingEngine):
    async def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        served = self._hot(_Method(wrapped, instance is not None), *_with(instance, args), **kwargs)
        return served if served.__class__ is not _Pending else await self._miss(*served)

    def direct(self, wrapped: Callable[..., Any]) -> Callable[..., Any]:
        def on_miss(caller: object, args: tuple[Any, ...], kwargs: dict[str, Any], why: Compute) -> Any:
            if caller.__class__ is _Method:
                return _Pending(caller.wrapped, args[caller.bound :], kwargs, why)
            return _Pending(wrapped, args, kwargs, why)

        hit, miss = self.hot_path(on_miss), self._miss
        self._hot = hit

        async def call(_proxy: object, *args: Any, **kwargs: Any) -> Any:
            served = hit(_proxy, *args, **kwargs)
            return served if served.__class__ is not _Pending else await miss(*served)

        return call

    async def _miss(
        self, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], why: Compute
    ) -> Any:
        outcome, ttl, key, stale, status = why

        def produce() -> Awaitable[Any]:
            return wrapped(*args, **kwargs)  # type: ignore[no-any-return]

        async def keep(value: Any, started: float, ended: float, finished: int) -> bool:
            return self.keep(key, value, ttl, started, ended, finished)

        if outcome is EARLY:  # a hit, already counted, that refreshes ahead of its expiry
            self.refresh_behind_async(key, produce, self.learning(keep, stale, status), ttl)
            return stale.value  # type: ignore[union-attr]
        return await self.compute_async(key, outcome, produce, keep, stale, ttl, status)
