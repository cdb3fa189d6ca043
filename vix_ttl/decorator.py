"""``@vix_cached``: adaptive TTLs on a function's results.

This module is the factory only: ``vix_cached`` checks its options once, at decoration
time, into an ``Options`` record; its ``Decorator`` picks the store of the cache given
(the first adapter that accepts it: the in-process mapping, aiocache, redis-py, then
those installed through the ``vix_ttl.stores`` entry points) and builds the function's
engine over it, in its proxy. The call itself is ``vix_ttl._cache.engine``'s.
``ARCHITECTURE.md`` draws the picture.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
from collections.abc import Callable, Hashable, MutableMapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, overload

from vix_ttl._cache.api import CacheInfo, Store, StoreAdapter
from vix_ttl._cache.engine import Engine, cached_functions
from vix_ttl._cache.options import CacheOptions, Function, Options, TTLArg
from vix_ttl._proxy import wrap
from vix_ttl._stores.mapping import MappingStore
from vix_ttl.breaker import VIXCircuitBreaker
from vix_ttl.registry import get_breaker

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["CacheInfo", "CacheOptions", "CachedFunction", "Decorator", "cached_functions", "vix_cached"]

P = ParamSpec("P")
R = TypeVar("R")


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


def vix_cached(
    ttl: TTLArg | None,
    *,
    cache: Any = None,
    maxsize: int = 4096,
    key: Callable[..., Hashable] | None = None,
    namespace: str | None = None,
    **options: Unpack[CacheOptions],
) -> Decorator:
    """Cache a function's results with TTLs that adapt to the volatility of its data.

    Args:
        ttl: Base TTL in seconds for NORMAL status (``None``: never expires),
            or a callable taking the call's arguments and returning it.
        cache: None (in-memory FIFO of *maxsize* entries), a cachetools cache or
            any MutableMapping, an aiocache cache or a redis-py asyncio client
            (async functions only), or any cache a ``vix_ttl.stores`` adapter accepts.
        maxsize: Entries of the default in-memory store.
        key: Callable taking the call's arguments, returning the key (default:
            the arguments themselves). The key is exactly what it returns.
        namespace: Keeps this function's entries apart from other functions'
            in a shared cache (default: the function's ``module.qualname``).
        **options: ``CacheOptions``: ``status`` (required), ``warning_ttl``, ``breaker``,
            ``coalesce``, ``stale_while_revalidate``, ``stale_if_error``, ``early_refresh``,
            ``secret``, ``clock``.

    The callables (*status*, *ttl*, *warning_ttl*, *key*) get exactly the
    arguments the function gets: ``self`` / ``cls`` included for methods.

    Raises:
        TypeError, ValueError: at decoration time, for any argument out of range.
    """
    own = {"cache": cache, "maxsize": maxsize, "key": key, "namespace": namespace}
    checked = Options.checked(ttl, own, options)
    return Decorator(checked, _adapter_for(cache))


@dataclasses.dataclass(frozen=True, slots=True)
class Decorator:
    """What ``vix_cached(...)`` returns: checked options and the store adapter of their cache.

    vix_ttl's integrations set the options ``vix_cached`` does not take with ``replace``
    (``records``, ``entry_ttl``, ``stale_ok``, ``wire_key``: see ``Options``).
    """

    options: Options
    adapter: StoreAdapter

    def replace(self, **changes: Any) -> Decorator:
        """This decorator with some ``Options`` changed."""
        return Decorator(dataclasses.replace(self.options, **changes), self.adapter)

    @overload
    def __call__(self, func: classmethod[Any, P, R]) -> CachedFunction[P, R]: ...
    @overload
    def __call__(self, func: staticmethod[P, R]) -> CachedFunction[P, R]: ...
    @overload
    def __call__(self, func: Callable[P, R]) -> CachedFunction[P, R]: ...

    def __call__(self, func: Any) -> Any:
        """*func* cached: its engine over its store, in its proxy."""
        function = self.function(func)
        return wrap(func, Engine(function, self.adapter.store(self.options.cache, function)))

    def function(self, func: Any) -> Function:
        """*func*'s options, name and namespace, with its breaker: the one given, else its own."""
        target = func.__func__ if isinstance(func, classmethod | staticmethod) else func
        if not callable(target):
            raise TypeError(f"vix_cached can only decorate a callable, got {func!r}")
        if inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target):
            raise TypeError(
                f"vix_cached cannot cache the generator {target.__qualname__}: a generator's values are "
                f"consumed once, and a cached one would be empty from its second call; return a list"
            )
        name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"
        if self.options.namespace is None and self.options.cache is not None and "<lambda>" in name:
            raise TypeError(
                f"vix_cached: a lambda over a shared cache needs namespace=: every lambda of "
                f"{name.rpartition('.<lambda>')[0] or 'a module'} is named {name}, and two of them "
                f"would serve each other's values"
            )
        namespace = self.options.namespace or name
        breaker = self.options.breaker
        if not isinstance(breaker, VIXCircuitBreaker):  # a name, or None: this function's own
            breaker = get_breaker(breaker or namespace)
        # An object whose __call__ is a coroutine function is one too.
        is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
            vars(type(target)).get("__call__")
        )
        return Function(self.options, name, namespace, breaker, is_async)


class _Mappings:
    """The built-in store adapter: in-process mappings (None: a store of the function's own)."""

    def accepts(self, cache: object) -> bool:
        return cache is None or isinstance(cache, MutableMapping)

    def store(self, cache: Any, function: Function) -> Store:
        return MappingStore(cache, function)


_BUILT_IN = ("vix_ttl._stores.aiocache", "vix_ttl._stores.redis")
"""The adapters at the edge that ship with vix_ttl, each importing its extra."""


def _adapter_for(cache: Any) -> StoreAdapter:
    """The first adapter that accepts *cache*: built in, then installed (``vix_ttl.stores``)."""
    if isinstance(cache, type):
        raise TypeError(
            f"vix_cached: cache must be a cache instance, got the class {cache.__qualname__}: "
            f"write cache={cache.__qualname__}(...)"
        )
    if _MAPPINGS.accepts(cache):
        return _MAPPINGS
    missing = []
    found: list[tuple[str, Callable[[], StoreAdapter]]]
    found = [(name, functools.partial(_built_in, name)) for name in _BUILT_IN]
    found += [(entry.name, entry.load) for entry in entry_points(group="vix_ttl.stores")]
    for name, load in found:
        try:
            adapter: StoreAdapter = load()
        except ImportError as exc:  # its integration's extra is not installed
            missing.append(f"{name} ({exc.name or exc})")
            continue
        if adapter.accepts(cache):
            return adapter
    unavailable = f"; not installed: {', '.join(missing)}" if missing else ""
    raise TypeError(
        f"vix_cached: cache must be None, a cachetools cache / MutableMapping, an aiocache cache, a "
        f"redis-py asyncio client, or a cache that an installed store adapter accepts (entry points "
        f"vix_ttl.stores), got {cache!r}{unavailable}"
    )


def _built_in(module: str) -> StoreAdapter:
    adapter: StoreAdapter = importlib.import_module(module).ADAPTER
    return adapter


_MAPPINGS = _Mappings()
