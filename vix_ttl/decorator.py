"""``@vix_cached``: adaptive TTLs on a function's results.

Per call: work out the status, record it and decide the TTL in one step of the
breaker; a TTL of 0 bypasses the cache; otherwise serve a stored entry only
while ``age < min(stored TTL, TTL decided now)``, else compute (shared with
concurrent callers of the same key) and store with the TTL decided now.

As in cachetools, the options are resolved once, at decoration time: the
wrapper is one of three call classes (sync + in-process store, async +
in-process store, async + aiocache), given its key builder, its base-TTL table
and its in-flight sharing, so the per-call path holds no option branches.
"""

from __future__ import annotations

import inspect
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, MutableMapping
from typing import Any, NamedTuple, ParamSpec, Protocol, TypeVar, overload

import cachetools
import wrapt
from cachetools.keys import hashkey

from vix_ttl._checks import check_clock, check_ttl
from vix_ttl._coalesce import AsyncFlights, NoFlights, ThreadFlights
from vix_ttl._faults import FaultLog
from vix_ttl._signing import Secret, signer_of
from vix_ttl.breaker import VIXCircuitBreaker
from vix_ttl.registry import get_breaker
from vix_ttl.status import VixStatus

__all__ = ["CacheInfo", "CachedFunction", "Entry", "vix_cached"]

P = ParamSpec("P")
R = TypeVar("R")
TTLArg = float | Callable[..., float]

_NORMAL, _WARNING, _PANIC = VixStatus.NORMAL, VixStatus.WARNING, VixStatus.PANIC


class CacheInfo(NamedTuple):
    """What happened to each call; every call counts under exactly one field."""

    hits: int
    """Served from the cache."""
    misses: int
    """No entry: computed."""
    stale: int
    """An entry too old for the TTL decided now (or the one it was stored with): computed."""
    bypasses: int
    """The policy bypassed the cache (TTL 0): computed, nothing read or written."""
    coalesced: int
    """Joined another call's computation of the same key."""
    errors: int
    """The cache backend failed: computed anyway."""
    rejected: int
    """An entry of a shared store failed its signature check or could not be decoded: computed."""

    @property
    def calls(self) -> int:
        """All the calls counted."""
        return sum(self)


class Entry(NamedTuple):
    """What the in-process stores hold for one key."""

    value: Any
    stored_at: float
    ttl: float


class CachedFunction(Protocol[P, R]):
    """What ``@vix_cached`` returns: the function, plus the cache's controls."""

    __wrapped__: Callable[P, R]
    __name__: str
    __qualname__: str
    __module__: str
    __doc__: str | None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def __get__(self, instance: Any, owner: type | None = None) -> CachedFunction[..., R]: ...

    @property
    def breaker(self) -> VIXCircuitBreaker: ...

    @property
    def cache(self) -> Any: ...

    def cache_info(self) -> CacheInfo: ...

    def cache_clear(self) -> Any: ...

    def invalidate(self, *args: Any, **kwargs: Any) -> Any: ...


class _Decorator(Protocol):
    @overload
    def __call__(self, func: classmethod[Any, P, R]) -> CachedFunction[P, R]: ...
    @overload
    def __call__(self, func: staticmethod[P, R]) -> CachedFunction[P, R]: ...
    @overload
    def __call__(self, func: Callable[P, R]) -> CachedFunction[P, R]: ...


class _Compute(NamedTuple):
    """Why a call computes (its ``CacheInfo`` field), with the TTL and key to store it under."""

    outcome: str
    ttl: float
    key: Any


# The CacheInfo fields, as the outcomes of a call.
_HIT, _MISS, _STALE, _BYPASS, _COALESCED, _ERROR, _REJECTED = CacheInfo._fields


_calls: weakref.WeakSet[_Call] = weakref.WeakSet()


def cached_functions() -> dict[str, _Call]:
    """Every live ``@vix_cached`` function: ``module.qualname`` -> its controls (for exporters)."""
    return {call.name: call for call in list(_calls)}


class _Call:
    """What every variant shares: from the call's arguments to (TTL, key)."""

    # One count per CacheInfo field, guarded by _lock; the hit path adds to `hits` by name.
    hits: int

    def __init__(
        self,
        *,
        name: str,
        status: Callable[..., Any],
        bases: dict[VixStatus, tuple[VixStatus, TTLArg]],
        breaker: VIXCircuitBreaker,
        key_of: Callable[..., Hashable] | None,
        clock: Callable[[], float],
        flights: Any,
    ) -> None:
        self.name = name
        self.breaker = breaker
        self._status = status
        self._bases = bases
        self._observe = breaker._observe
        self._user_key = key_of
        self._args_are_key = key_of is None  # without kwargs, the arguments are the key as they are
        self._clock = clock
        self._flights = flights
        self._lock = threading.Lock()
        self._reset_counts()
        _calls.add(self)
        self._faults = FaultLog(name)

    def _prepare(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[float, Any, VixStatus, float]:
        """``(ttl, key, status, base_ttl)`` of one call; the status is recorded."""
        if instance is not None:  # a method: the callables see self / cls, as the function does
            args = (instance, *args)
        status = self._status(*args, **kwargs)
        try:  # a member or its name: one lookup for both (they hash alike)
            status, base = self._bases[status]
        except (KeyError, TypeError):
            status, base = self._bases[self._checked_status(status)]
        if base.__class__ is not float:  # a ttl function
            base = self._checked_ttl(base(*args, **kwargs))  # type: ignore[operator]
        key: Any = args if self._args_are_key and not kwargs else self.key(args, kwargs)
        return self._observe(status, base), key, status, base

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The cache key of one call: what ``key=`` returns, else the arguments (``self`` included)."""
        if self._user_key is not None:
            return self._user_key(*args, **kwargs)
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

    def _checked_status(self, status: Any) -> VixStatus:
        try:
            return VixStatus.coerce(status)
        except ValueError as exc:
            raise ValueError(f"vix_cached({self.name}): the status function returned {exc}") from None

    def _checked_ttl(self, ttl: Any) -> float:
        try:
            return check_ttl("ttl", ttl)
        except (TypeError, ValueError) as exc:
            raise type(exc)(
                f"vix_cached({self.name}): the ttl function returned an invalid value: {exc}"
            ) from None

    async def _compute_async(
        self,
        key: Any,
        outcome: str,
        produce: Callable[[], Awaitable[Any]],
        keep: Callable[[Any], Awaitable[bool]],
    ) -> Any:
        """Compute (shared with concurrent callers of *key*), store unless bypassing, count the call."""
        counted = _COALESCED  # unless this call's own compute() runs

        async def compute() -> Any:
            nonlocal counted
            counted = outcome
            result = await produce()
            if outcome is not _BYPASS and not await keep(result):
                counted = _ERROR
            return result

        try:
            return await self._flights.run(key, compute)
        finally:
            self._count(counted)

    def _count(self, outcome: str) -> None:
        """Count one call under *outcome*, a ``CacheInfo`` field."""
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + 1)

    def cache_info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(*(getattr(self, field) for field in CacheInfo._fields))

    def _reset_counts(self) -> None:
        with self._lock:
            for field in CacheInfo._fields:
                setattr(self, field, 0)


class _MappingCall(_Call):
    """An in-process store: a cachetools cache or any MutableMapping, behind one lock."""

    def __init__(self, cache: MutableMapping[Any, Any], *, prefix: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache = cache
        self._prefix = prefix
        self._args_are_key = self._args_are_key and prefix is None

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """As for every store; in a mapping of the user's, which other functions may share,
        under this function's namespace."""
        key = super().key(args, kwargs)
        return key if self._prefix is None else (self._prefix, key)

    def _serve(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The hot path, top to bottom: a fresh entry's value (a hit), else the ``_Compute`` to run."""
        # _prepare(), written out: on a hit, its call and its tuple cost a
        # tenth of the whole path. The suite runs every store, both stay in step.
        if instance is not None:  # a method: the callables see self / cls, as the function does
            args = (instance, *args)
        status = self._status(*args, **kwargs)
        try:  # a member or its name: one lookup for both (they hash alike)
            status, base = self._bases[status]
        except (KeyError, TypeError):
            status, base = self._bases[self._checked_status(status)]
        if base.__class__ is not float:  # a ttl function
            base = self._checked_ttl(base(*args, **kwargs))  # type: ignore[operator]
        key: Any = args if self._args_are_key and not kwargs else self.key(args, kwargs)
        ttl = self._observe(status, base)
        if not ttl:
            return _Compute(_BYPASS, ttl, self.hashable(key))
        now = self._clock()
        lock = self._lock
        lock.acquire()  # not `with`: this is the hit path, and `with` costs twice as much
        try:
            entry = self.cache[key]
            if entry.__class__ is not Entry:  # not written by vix_ttl: a miss, overwritten
                return _Compute(_MISS, ttl, key)
            value, stored_at, stored_ttl = entry
            if now - stored_at < (stored_ttl if stored_ttl < ttl else ttl):
                self.hits += 1
                return value
            return _Compute(_STALE, ttl, key)
        except KeyError:
            return _Compute(_MISS, ttl, key)
        except Exception as exc:
            self.hashable(key)  # an unhashable key is the caller's error, not the store's
            self._faults.failed("get", exc)
            return _Compute(_ERROR, ttl, key)
        finally:
            lock.release()

    def _keep(self, key: Any, value: Any, ttl: float) -> bool:
        """Store a computed value; False if the store failed."""
        entry = Entry(value, self._clock(), ttl)
        with self._lock:
            try:
                self.cache[key] = entry
            except Exception as exc:
                self._faults.failed("set", exc)
                return False
        if self._faults.failing:
            self._faults.recovered()
        return True

    def cache_clear(self) -> None:
        with self._lock:
            self.cache.clear()
        self._reset_counts()

    def invalidate(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        if instance is not None:
            args = (instance, *args)
        key = self.key(args, kwargs)
        with self._lock:
            try:
                return self.cache.pop(key, None) is not None
            except Exception as exc:  # a failing store: nothing to drop that could be served
                self._faults.failed("delete", exc)
                return False


class _SyncCall(_MappingCall):
    def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        served = self._serve(instance, args, kwargs)
        if served.__class__ is not _Compute:
            return served  # a hit
        outcome, ttl, key = served
        counted = _COALESCED  # unless this call's own compute() runs

        def compute() -> Any:
            nonlocal counted
            counted = outcome
            result = wrapped(*args, **kwargs)
            if outcome is not _BYPASS and not self._keep(key, result, ttl):
                counted = _ERROR
            return result

        try:
            return self._flights.run(key, compute)
        finally:
            self._count(counted)


class _AsyncCall(_MappingCall):
    async def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        served = self._serve(instance, args, kwargs)
        if served.__class__ is not _Compute:
            return served  # a hit
        outcome, ttl, key = served

        async def keep(value: Any) -> bool:
            return self._keep(key, value, ttl)

        return await self._compute_async(key, outcome, lambda: wrapped(*args, **kwargs), keep)


class _CachedFunction(wrapt.FunctionWrapper):  # type: ignore[type-arg]
    """The decorated function: the original, plus the cache's controls."""

    def __init__(self, wrapped: Callable[..., Any], call: _Call) -> None:
        super().__init__(wrapped, call)  # type: ignore[arg-type]  # subclasses define __call__
        self._self_call = call  # wrapt keeps `_self_` attributes on the proxy

    @classmethod
    def for_call(cls, wrapped: Callable[..., Any], call: _Call) -> _CachedFunction:
        """The wrapper of *wrapped*, with a ``__call__`` bound to it at decoration time.

        The unbound wrapper is only ever called as a plain function (methods
        are called through ``_BoundCachedFunction``). wrapt's generic call
        first probes the function for a ``__self__``, raising and swallowing
        an AttributeError on every call; and reading attributes through the
        proxy costs more than the store lookup. A subclass whose ``__call__``
        closes over the call object and the function does neither.
        """

        def call_through(self: _CachedFunction, *args: Any, **kwargs: Any) -> Any:
            return call(wrapped, None, args, kwargs)  # type: ignore[operator]

        specialised = type(cls.__name__, (cls,), {"__call__": call_through, "__module__": cls.__module__})
        return specialised(wrapped, call)  # type: ignore[no-any-return]

    @property
    def _vix(self) -> Any:
        return self._self_call

    @property
    def breaker(self) -> VIXCircuitBreaker:
        """The breaker that decides this function's TTLs."""
        return self._vix.breaker  # type: ignore[no-any-return]

    @property
    def cache(self) -> Any:
        """The store: the mapping, or the aiocache cache."""
        return self._vix.cache

    def cache_info(self) -> CacheInfo:
        """Counts per outcome; they add up to the number of calls."""
        return self._vix.cache_info()  # type: ignore[no-any-return]

    def cache_clear(self) -> Any:
        """Drop every entry and zero the counts (a coroutine for aiocache stores)."""
        return self._vix.cache_clear()

    def invalidate(self, *args: Any, **kwargs: Any) -> Any:
        """Drop the entry for these arguments (a coroutine for aiocache stores)."""
        return self._vix.invalidate(self._self_instance, args, kwargs)


class _BoundCachedFunction(wrapt.BoundFunctionWrapper):  # type: ignore[type-arg]
    """The decorated method, bound: the same controls, keyed with its instance."""

    @property
    def _vix(self) -> Any:
        return self._self_parent._self_call

    breaker = _CachedFunction.breaker
    cache = _CachedFunction.cache
    cache_info = _CachedFunction.cache_info
    cache_clear = _CachedFunction.cache_clear
    invalidate = _CachedFunction.invalidate


_CachedFunction.__bound_function_wrapper__ = _BoundCachedFunction  # type: ignore[misc]


def vix_cached(
    ttl: TTLArg | None,
    *,
    status: Callable[..., VixStatus | str],
    warning_ttl: TTLArg | None = None,
    breaker: VIXCircuitBreaker | str | None = None,
    cache: Any = None,
    maxsize: int = 4096,
    key: Callable[..., Hashable] | None = None,
    namespace: str | None = None,
    coalesce: bool = True,
    secret: Secret | None = None,
    clock: Callable[[], float] | None = None,
) -> _Decorator:
    """Cache a function's results with TTLs that adapt to the volatility of its data.

    Args:
        ttl: Base TTL in seconds for NORMAL status (``None``: never expires),
            or a callable taking the call's arguments and returning it.
        status: Callable taking the call's arguments, returning a ``VixStatus``
            or its name.
        warning_ttl: Base TTL for WARNING status (default: *ttl*). PANIC's base is 0.
        breaker: A ``VIXCircuitBreaker``, a registry name, or None for the default one.
        cache: None (in-memory FIFO of *maxsize* entries), a cachetools cache or
            any MutableMapping, or an aiocache cache instance (async functions only).
        maxsize: Entries of the default in-memory store.
        key: Callable taking the call's arguments, returning the key (default:
            the arguments themselves). The key is exactly what it returns.
        namespace: Keeps this function's entries apart from other functions'
            in a shared cache (default: the function's ``module.qualname``).
        coalesce: Concurrent calls for one key share one computation.
        secret: Signs the entries of a shared store (Redis, memcached), so
            forged ones are rejected; a list of secrets rotates them (the
            first signs, every one verifies). Required when the cache's
            serializer pickles.
        clock: What entry ages are measured with (default: the breaker's clock
            for in-process stores, ``time.time`` for aiocache).

    The callables (*status*, *ttl*, *warning_ttl*, *key*) get exactly the
    arguments the function gets: ``self`` / ``cls`` included for methods.

    Raises:
        TypeError, ValueError: at decoration time, for any argument out of range.
    """
    if not callable(status):
        raise TypeError(f"vix_cached: status must be a callable taking the call's arguments, got {status!r}")
    bases = _base_ttls(ttl, warning_ttl)
    if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize <= 0:
        raise ValueError(f"vix_cached: maxsize must be a positive int, got {maxsize!r}")
    if key is not None and not callable(key):
        raise TypeError(f"vix_cached: key must be a callable taking the call's arguments, got {key!r}")
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise TypeError(f"vix_cached: namespace must be a non-empty string, got {namespace!r}")
    if not isinstance(coalesce, bool):
        raise TypeError(f"vix_cached: coalesce must be True or False, got {coalesce!r}")
    signer = signer_of(secret, owner="vix_cached")
    if clock is not None:
        clock = check_clock("vix_cached clock", clock)
    the_breaker = _resolve_breaker(breaker)
    aiocache = _is_aiocache(cache)
    if not aiocache and cache is not None and not isinstance(cache, MutableMapping):
        raise TypeError(
            f"vix_cached: cache must be None, a cachetools cache / MutableMapping or an aiocache "
            f"cache instance, got {cache!r}"
        )

    def decorate(func: Any) -> Any:
        target = func.__func__ if isinstance(func, classmethod | staticmethod) else func
        if not callable(target):
            raise TypeError(f"vix_cached can only decorate a callable, got {func!r}")
        name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"
        is_async = inspect.iscoroutinefunction(target)
        common: dict[str, Any] = {
            "name": name,
            "status": status,
            "bases": bases,
            "breaker": the_breaker,
            "key_of": key,
        }
        call: _Call
        if aiocache:
            if not is_async:
                raise TypeError(
                    f"vix_cached({name}): an aiocache cache serves async functions only; "
                    f"use cache=None or a cachetools cache for a sync function"
                )
            from vix_ttl.aiocache import AiocacheCall  # noqa: PLC0415 - the optional extra

            call = AiocacheCall(
                cache,
                namespace=namespace or name,
                signer=signer,
                clock=clock or time.time,
                flights=AsyncFlights() if coalesce else NoFlights(),
                **common,
            )
        else:
            # FIFO: with TTLs this short, the oldest entry written is the next
            # to go stale anyway, and a FIFO hit does not reorder (LRU's does).
            # A mapping of the user's may be shared: keys carry the namespace.
            store: MutableMapping[Any, Any]
            prefix: str | None
            if cache is None:
                store, prefix = cachetools.FIFOCache(maxsize), None
            else:
                store, prefix = cache, namespace or name
            call_class = _AsyncCall if is_async else _SyncCall
            flights = (AsyncFlights() if is_async else ThreadFlights()) if coalesce else NoFlights()
            call = call_class(
                store, prefix=prefix, clock=clock or the_breaker.clock, flights=flights, **common
            )
        return _CachedFunction.for_call(func, call)

    return decorate


def _base_ttls(ttl: TTLArg | None, warning_ttl: TTLArg | None) -> dict[VixStatus, tuple[VixStatus, TTLArg]]:
    """Status -> (status, base TTL): seconds (``inf``: never expires), or a callable giving them per call."""
    normal = ttl if callable(ttl) else check_ttl("ttl", ttl)
    if warning_ttl is None:
        warning = normal
    else:
        warning = warning_ttl if callable(warning_ttl) else check_ttl("warning_ttl", warning_ttl)
    return {_NORMAL: (_NORMAL, normal), _WARNING: (_WARNING, warning), _PANIC: (_PANIC, 0.0)}


def _resolve_breaker(breaker: VIXCircuitBreaker | str | None) -> VIXCircuitBreaker:
    if breaker is None:
        return get_breaker()
    if isinstance(breaker, str):
        return get_breaker(breaker)
    if isinstance(breaker, VIXCircuitBreaker):
        return breaker
    raise TypeError(
        f"vix_cached: breaker must be a VIXCircuitBreaker, a registry name or None, got {breaker!r}"
    )


def _is_aiocache(cache: Any) -> bool:
    # aiocache is an optional extra: an object can only be one of its caches
    # if the module is already loaded, and the core never imports it.
    module = sys.modules.get("aiocache.base")
    return module is not None and isinstance(cache, module.BaseCache)
