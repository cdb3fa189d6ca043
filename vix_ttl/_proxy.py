"""What ``@vix_cached`` returns: wrapt proxies of the function, with the cache's controls.

The proxy keeps the function's name, docstring, signature and ``__wrapped__``,
binds like the function (methods, classmethods, staticmethods), and hands
every call to its engine as ``(wrapped, instance, args, kwargs)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import wrapt

from vix_ttl._cache.api import CacheInfo
from vix_ttl._cache.engine import Engine
from vix_ttl.breaker import VIXCircuitBreaker

__all__ = ["engine_of", "wrap"]


def wrap(wrapped: Callable[..., Any], engine: Engine) -> Any:
    """The proxy of *wrapped*, with a ``__call__`` bound to its engine at decoration time.

    The unbound proxy is only ever called as a plain function (methods are
    called through ``_BoundCachedFunction``). wrapt's generic call first probes
    the function for a ``__self__``, raising and swallowing an AttributeError
    on every call; and reading attributes through the proxy costs more than
    the store lookup. A subclass whose ``__call__`` is the engine's ``direct``
    call, closed over the function, does neither.
    """

    call = engine.direct(wrapped)
    proxy = type(_CachedFunction.__name__, (_CachedFunction,), {"__call__": call, "__module__": __name__})
    return proxy(wrapped, engine)


def engine_of(function: Any) -> Engine:
    """The engine behind a function ``wrap`` returned (bound or not)."""
    return function._vix  # type: ignore[no-any-return]


class _CachedFunction(wrapt.FunctionWrapper):  # type: ignore[type-arg]
    """The decorated function: the original, plus the cache's controls."""

    def __init__(self, wrapped: Callable[..., Any], engine: Engine) -> None:
        super().__init__(wrapped, engine)
        self._self_engine = engine  # wrapt keeps `_self_` attributes on the proxy

    @property
    def _vix(self) -> Engine:
        return self._self_engine

    def __dir__(self) -> list[str]:
        """The function's names and the cache's controls (a REPL completes both)."""
        return sorted({*dir(self.__wrapped__), *_CONTROLS})

    def _arguments(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """*args* as the callables see a call's (``self`` / ``cls`` first): what keys it."""
        # wrapt binds a classmethod or a staticmethod with the instance it was read from (None
        # from the class): a classmethod's calls get the class, a staticmethod's nothing.
        binding = getattr(self, "_self_binding", None)
        if binding == "classmethod":
            return (self._self_owner, *args)
        if binding == "staticmethod":
            return args
        instance = self._self_instance
        return args if instance is None else (instance, *args)

    @property
    def breaker(self) -> VIXCircuitBreaker:
        """The breaker that decides this function's TTLs."""
        return self._vix.breaker

    @property
    def cache(self) -> Any:
        """The store: the mapping, or the aiocache cache."""
        return self._vix.cache

    def cache_info(self) -> CacheInfo:
        """Counts per outcome; they add up to the number of calls."""
        return self._vix.cache_info()

    def cache_clear(self) -> Any:
        """Drop every entry and zero the counts (a coroutine, for a coroutine function)."""
        return self._vix.cache_clear()

    def invalidate(self, *args: Any, **kwargs: Any) -> Any:
        """Drop the entry for these arguments; whether it was there (a coroutine, for async functions)."""
        return self._vix.invalidate(self._arguments(args), kwargs)

    def in_flight(self, *args: Any, **kwargs: Any) -> int:
        """How many calls with these arguments wait now on a computation another call leads."""
        return self._vix.in_flight(self._arguments(args), kwargs)


_CONTROLS = ("breaker", "cache", "cache_info", "cache_clear", "invalidate", "in_flight")


class _BoundCachedFunction(wrapt.BoundFunctionWrapper):  # type: ignore[type-arg]
    """The decorated method, bound: the same controls, keyed with its instance."""

    @property
    def _vix(self) -> Engine:
        engine: Engine = self._self_parent._self_engine
        return engine

    __dir__ = _CachedFunction.__dir__
    _arguments = _CachedFunction._arguments
    breaker = _CachedFunction.breaker
    cache = _CachedFunction.cache
    cache_info = _CachedFunction.cache_info
    cache_clear = _CachedFunction.cache_clear
    invalidate = _CachedFunction.invalidate
    in_flight = _CachedFunction.in_flight


_CachedFunction.__bound_function_wrapper__ = _BoundCachedFunction  # type: ignore[misc]
