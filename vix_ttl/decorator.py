"""``@vix_cached``: adaptive TTLs on a function's results.

This module is the factory only. It checks the options once, at decoration
time, resolves them into an ``Options`` record, and hands them to the store
adapter of the cache given: ``vix_ttl._mapping`` for in-process stores, or an
adapter found through the ``vix_ttl.stores`` entry points (aiocache's, at the
edge). The call path itself lives in ``vix_ttl._engine`` and the adapters; the
proxy returned, in ``vix_ttl._proxy``. ``ARCHITECTURE.md`` draws the picture.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Hashable, Mapping, MutableMapping
from importlib.metadata import entry_points
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from vix_ttl._checks import check_clock, check_count, check_name, check_seconds, check_ttl
from vix_ttl._engine import CacheInfo, Engine, Options, StoreAdapter, TTLArg, cached_functions
from vix_ttl._mapping import mapping_engine
from vix_ttl._proxy import wrap
from vix_ttl._signing import Secret, signer_of
from vix_ttl._stale import Allowance
from vix_ttl.breaker import VIXCircuitBreaker
from vix_ttl.mode import Mode
from vix_ttl.policy import PANIC_BASE_TTL
from vix_ttl.registry import get_breaker
from vix_ttl.status import VixStatus

__all__ = ["CacheInfo", "CachedFunction", "Decorate", "cached_functions", "vix_cached"]

P = ParamSpec("P")
R = TypeVar("R")

_NORMAL, _WARNING, _PANIC = VixStatus.NORMAL, VixStatus.WARNING, VixStatus.PANIC


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

    def in_flight(self, *args: Any, **kwargs: Any) -> int: ...


class _Decorator(Protocol):
    @overload
    def __call__(self, func: classmethod[Any, P, R]) -> CachedFunction[P, R]: ...
    @overload
    def __call__(self, func: staticmethod[P, R]) -> CachedFunction[P, R]: ...
    @overload
    def __call__(self, func: Callable[P, R]) -> CachedFunction[P, R]: ...


def vix_cached(
    ttl: TTLArg | None,
    *,
    status: Callable[..., VixStatus | str] | None = None,
    warning_ttl: TTLArg | None = None,
    breaker: VIXCircuitBreaker | str | None = None,
    cache: Any = None,
    maxsize: int = 4096,
    key: Callable[..., Hashable] | None = None,
    namespace: str | None = None,
    coalesce: bool = True,
    stale_while_revalidate: float | Mapping[Mode | str, float] = 0,
    stale_if_error: float | Mapping[Mode | str, float] = 0,
    early_refresh: float = 0,
    secret: Secret | None = None,
    clock: Callable[[], float] | None = None,
) -> _Decorator:
    """Cache a function's results with TTLs that adapt to the volatility of its data.

    Args:
        ttl: Base TTL in seconds for NORMAL status (``None``: never expires),
            or a callable taking the call's arguments and returning it.
        status: Callable taking the call's arguments, returning a ``VixStatus``
            or its name (required).
        warning_ttl: Base TTL for WARNING status (default: *ttl*). PANIC's base is 0.
        breaker: A ``VIXCircuitBreaker``, a registry name (``get_breaker``), or None: a
            breaker of the function's own, registered under its *namespace*. Functions
            share a breaker only when they name the same one.
        cache: None (in-memory FIFO of *maxsize* entries), a cachetools cache or
            any MutableMapping, or an aiocache cache instance (async functions only).
        maxsize: Entries of the default in-memory store.
        key: Callable taking the call's arguments, returning the key (default:
            the arguments themselves). The key is exactly what it returns.
        namespace: Keeps this function's entries apart from other functions'
            in a shared cache (default: the function's ``module.qualname``).
        coalesce: Concurrent calls for one key share one computation.
        stale_while_revalidate: Seconds an entry past its fresh TTL is still served
            at once while one refresh runs in the background (a number, or a mapping
            mode -> seconds: missing modes 0). Never while the decision is a bypass.
        stale_if_error: Seconds an entry past its fresh TTL is served instead of
            the computation's exception (a number, or a mapping mode -> seconds).
        early_refresh: XFetch's beta (0: off): a hit with r seconds of freshness
            left starts a background refresh with probability exp(-r / (delta * beta)),
            delta being how long the entry took to compute.
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
    if status is None and callable(ttl):
        raise TypeError(
            "vix_cached needs status=, in its parentheses: write @vix_cached(60, status=lambda *args: "
            "'normal') above the function (written @vix_cached alone, it got the function as its ttl)"
        )
    if not callable(status):
        raise TypeError(
            "vix_cached: status= must be a callable taking the call's arguments and returning "
            f"'normal', 'warning' or 'panic' (or a VixStatus), got {status!r}"
        )
    bases = _base_ttls(ttl, warning_ttl)
    check_count("vix_cached maxsize", maxsize, minimum=1)
    if key is not None and not callable(key):
        raise TypeError(f"vix_cached: key must be a callable taking the call's arguments, got {key!r}")
    if namespace is not None:
        check_name("vix_cached namespace", namespace)
    if not isinstance(coalesce, bool):
        raise TypeError(f"vix_cached: coalesce must be True or False, got {coalesce!r}")
    swr = Allowance.of("vix_cached stale_while_revalidate", stale_while_revalidate)
    sie = Allowance.of("vix_cached stale_if_error", stale_if_error)
    beta = check_seconds("vix_cached early_refresh", early_refresh)
    signer = signer_of(secret, owner="vix_cached")
    if clock is not None:
        clock = check_clock("vix_cached clock", clock)
    options = functools.partial(
        Options,
        status=status,
        bases=bases,
        key=key,
        coalesce=coalesce,
        signer=signer,
        clock=clock,
        stale_while_revalidate=swr,
        stale_if_error=sie,
        early_refresh=beta,
    )
    adapter = None if cache is None or isinstance(cache, MutableMapping) else _adapter_for(cache)
    return Decorate(options, _checked_breaker(breaker), namespace, cache, maxsize, adapter)


class Decorate:
    """What ``vix_cached(...)`` returns: options checked, ready to decorate a function.

    ``options_for`` and ``build`` are its two steps, apart for vix_ttl's own
    integrations (the ASGI middleware) that set options the decorator does not take.
    """

    def __init__(  # noqa: PLR0917 - what vix_cached checked, handed over as it is
        self,
        options: Callable[..., Options],
        breaker: VIXCircuitBreaker | str | None,
        namespace: str | None,
        cache: Any,
        maxsize: int,
        adapter: StoreAdapter | None,
    ) -> None:
        self._options, self._breaker, self._namespace = options, breaker, namespace
        self._cache, self._maxsize, self._adapter = cache, maxsize, adapter

    def __call__(self, func: Any) -> Any:
        return self.build(func, self.options_for(func))

    def options_for(self, func: Any) -> Options:
        """The options of *func*, named after it, with its breaker: the one given, else its own."""
        target = func.__func__ if isinstance(func, classmethod | staticmethod) else func
        if not callable(target):
            raise TypeError(f"vix_cached can only decorate a callable, got {func!r}")
        if inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target):
            raise TypeError(
                f"vix_cached cannot cache the generator {target.__qualname__}: a generator's values are "
                f"consumed once, and a cached one would be empty from its second call; return a list"
            )
        name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"
        namespace = self._namespace or name
        breaker = self._breaker
        if not isinstance(breaker, VIXCircuitBreaker):  # a name, or None: this function's own
            breaker = get_breaker(breaker or namespace)
        return self._options(name=name, namespace=namespace, breaker=breaker)

    def build(self, func: Any, options: Options) -> Any:
        """*func* cached with *options*: its engine over the store, in its proxy."""
        target = func.__func__ if isinstance(func, classmethod | staticmethod) else func
        is_async = inspect.iscoroutinefunction(target)
        engine: Engine
        if self._adapter is None:
            engine = mapping_engine(self._cache, options, maxsize=self._maxsize, is_async=is_async)
        else:
            engine = self._adapter.engine(self._cache, options, is_async=is_async)
        return wrap(func, engine)


def _base_ttls(ttl: TTLArg | None, warning_ttl: TTLArg | None) -> dict[VixStatus, tuple[VixStatus, TTLArg]]:
    """Status -> (status, base TTL): seconds (``inf``: never expires), or a callable giving them per call."""
    normal = ttl if callable(ttl) else check_ttl("ttl", ttl)
    if warning_ttl is None:
        warning = normal
    else:
        warning = warning_ttl if callable(warning_ttl) else check_ttl("warning_ttl", warning_ttl)
    return {_NORMAL: (_NORMAL, normal), _WARNING: (_WARNING, warning), _PANIC: (_PANIC, PANIC_BASE_TTL)}


def _checked_breaker(breaker: object) -> VIXCircuitBreaker | str | None:
    if breaker is None or isinstance(breaker, VIXCircuitBreaker):
        return breaker
    if isinstance(breaker, str):
        return check_name("vix_cached breaker", breaker)
    raise TypeError(
        f"vix_cached: breaker must be a VIXCircuitBreaker, a registry name or None (a breaker of the "
        f"function's own), got {breaker!r}"
    )


def _adapter_for(cache: Any) -> StoreAdapter:
    """The store adapter that accepts *cache*, among those installed (entry points ``vix_ttl.stores``)."""
    if isinstance(cache, type):
        raise TypeError(
            f"vix_cached: cache must be a cache instance, got the class {cache.__qualname__}: "
            f"write cache={cache.__qualname__}(...)"
        )
    missing = []
    for entry in entry_points(group="vix_ttl.stores"):
        try:
            adapter: StoreAdapter = entry.load()
        except ImportError as exc:  # its integration's extra is not installed
            missing.append(f"{entry.name} ({exc.name or exc})")
            continue
        if adapter.accepts(cache):
            return adapter
    unavailable = f"; not installed: {', '.join(missing)}" if missing else ""
    raise TypeError(
        f"vix_cached: cache must be None, a cachetools cache / MutableMapping or an aiocache cache "
        f"instance, got {cache!r}{unavailable}"
    )
