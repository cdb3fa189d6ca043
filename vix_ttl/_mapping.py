"""The in-process store of ``@vix_cached``: a cachetools cache, or any MutableMapping.

Entries are ``Entry(value, stored_at, ttl)`` tuples aged on the breaker's
clock unless ``clock=`` says otherwise (so one ``FakeClock`` drives a whole
test), read and written under the engine's lock. The hit path, ``MappingEngine.serve``, reads top to bottom:
status -> key -> record and decide -> lookup -> freshness.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import cachetools

from vix_ttl._coalesce import AsyncFlights, ThreadFlights
from vix_ttl._engine import BYPASS, EARLY, ERROR, MISS, STALE, Compute, Engine, Entry, Options
from vix_ttl._stale import Stale, early_refresh_due

__all__ = ["MappingEngine", "mapping_engine"]


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

    def serve(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The hot path: a fresh entry's value (a hit), else the ``Compute`` to run."""
        # Engine.prepare and fresh(), written out: calling them makes a hit cost 16.1k
        # instructions instead of 13.6k (callgrind). tests/test_properties.py proves
        # this copy agrees with them.
        if instance is not None:  # a method: the callables see self / cls, as the function does
            args = (instance, *args)
        try:
            status = self._status(*args, **kwargs)
        except TypeError as exc:  # free until raised
            raise self.arity_error("status", self._status, exc, args, kwargs) from None
        try:  # a member or its name: one lookup for both (they hash alike)
            status, base = self._bases[status]
        except (KeyError, TypeError):
            status, base = self._bases[self.checked_status(status)]
        if base.__class__ is not float:  # a ttl function
            base = self.ttl_of(base, args, kwargs)
        key: Any = args if self._args_are_key and not kwargs else self.key(args, kwargs)
        ttl = self._observe(status, base)
        if not ttl:
            return Compute(BYPASS, ttl, self.hashable(key))
        now = self._clock()
        lock = self.lock
        lock.acquire()  # not `with`: this is the hit path, and `with` costs twice as much
        try:
            entry = self.cache[key]
            if entry.__class__ is not Entry:  # not written by vix_ttl: a miss, overwritten
                return Compute(MISS, ttl, key)
            value, stored_at, stored_ttl, delta = entry
            age, fresh_for = now - stored_at, (stored_ttl if stored_ttl < ttl else ttl)
            if 0 <= age < fresh_for:
                self.hits += 1
                if self._beta and early_refresh_due(fresh_for - age, delta, self._beta):
                    return Compute(EARLY, ttl, key, Stale(value, stored_at, fresh_for), status)
                return value
            return Compute(STALE, ttl, key, Stale(value, stored_at, fresh_for) if age >= 0 else None, status)
        except KeyError:
            return Compute(MISS, ttl, key)
        except Exception as exc:
            self.hashable(key)  # an unhashable key is the caller's error, not the store's
            self._faults.failed("get", exc)
            return Compute(ERROR, ttl, key)
        finally:
            lock.release()

    def keep(self, key: Any, value: Any, ttl: float, started: float, ended: float) -> bool:
        """Store a computed value, computed from *started* to *ended*; False if the store failed.

        Never over a newer entry: two computations of one key may finish in one order
        and write in the other (threads, or coalescing off), and a process never serves
        a value older than one it served before. A TTL of 0 keeps nothing, and drops
        the entry this value replaces.
        """
        if self._entry_ttl is not None:
            ttl = self._entry_ttl(value, ttl)
        entry = Entry(value, ended, ttl, max(0.0, ended - started)) if ttl else None
        with self.lock:
            try:
                held = self.cache.get(key)
                if held.__class__ is Entry and entry is not None and held.stored_at > entry.stored_at:
                    pass  # a newer value is there already
                elif entry is None:
                    self.cache.pop(key, None)
                else:
                    self.cache[key] = entry
            except Exception as exc:
                self._faults.failed("set", exc)
                return False
        self._faults.recovered()
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
        served = self.serve(instance, args, kwargs)
        return served if served.__class__ is not Compute else self._miss(wrapped, args, kwargs, served)

    def direct(self, wrapped: Callable[..., Any]) -> Callable[..., Any]:
        serve, miss = self.serve, self._miss

        def call(_proxy: object, *args: Any, **kwargs: Any) -> Any:
            served = serve(None, args, kwargs)
            return served if served.__class__ is not Compute else miss(wrapped, args, kwargs, served)

        return call

    def _miss(
        self, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], why: Compute
    ) -> Any:
        outcome, ttl, key, stale, status = why

        def produce() -> Any:
            return wrapped(*args, **kwargs)

        written = ttl or self.through_ttl(args, kwargs)

        def keep(value: Any, started: float, ended: float) -> bool:
            return self.keep(key, value, written, started, ended)

        if outcome is EARLY:  # a hit, already counted, that refreshes ahead of its expiry
            self.refresh_behind(key, produce, self.learning(keep, stale, status))
            return stale.value  # type: ignore[union-attr]
        return self.compute(key, outcome, produce, keep, stale, status)


class AsyncMappingEngine(MappingEngine):
    async def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        served = self.serve(instance, args, kwargs)
        return served if served.__class__ is not Compute else await self._miss(wrapped, args, kwargs, served)

    def direct(self, wrapped: Callable[..., Any]) -> Callable[..., Any]:
        serve, miss = self.serve, self._miss

        async def call(_proxy: object, *args: Any, **kwargs: Any) -> Any:
            served = serve(None, args, kwargs)
            return served if served.__class__ is not Compute else await miss(wrapped, args, kwargs, served)

        return call

    async def _miss(
        self, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], why: Compute
    ) -> Any:
        outcome, ttl, key, stale, status = why

        def produce() -> Awaitable[Any]:
            return wrapped(*args, **kwargs)  # type: ignore[no-any-return]

        written = ttl or self.through_ttl(args, kwargs)

        async def keep(value: Any, started: float, ended: float) -> bool:
            return self.keep(key, value, written, started, ended)

        if outcome is EARLY:  # a hit, already counted, that refreshes ahead of its expiry
            self.refresh_behind_async(key, produce, self.learning(keep, stale, status), ttl)
            return stale.value  # type: ignore[union-attr]
        return await self.compute_async(key, outcome, produce, keep, stale, ttl, status)
