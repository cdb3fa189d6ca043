"""aiocache (0.12.x) integration: adaptive TTLs for existing aiocache users.

- ``VixSerializer`` wraps any aiocache serializer in an envelope (status,
  stored-at, base and decided TTL) and turns entries too old for the breaker's
  decision *now* into misses.
- ``VixPlugin`` hands the ``ttl`` given to ``set`` to the serializer and makes
  the backend keep each entry for its decided TTL.
- ``cached`` is aiocache's decorator with adaptive TTLs (it is ``vix_cached``
  over the aiocache cache it builds).

All three work from an aiocache config dict by dotted path. aiocache 1.0 (its
development branch) drops config dicts; this module supports the 0.12 line.

This module imports aiocache: it is the edge of vix_ttl, never its core.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import importlib
import math
import time
from collections.abc import Callable, Hashable
from typing import Any

from aiocache.backends.memcached import MemcachedBackend
from aiocache.backends.memory import SimpleMemoryBackend
from aiocache.backends.redis import RedisBackend
from aiocache.base import SENTINEL, BaseCache
from aiocache.decorators import cached as _aiocache_cached
from aiocache.plugins import BasePlugin
from aiocache.serializers import BaseSerializer, PickleSerializer

from vix_ttl._checks import check_seconds
from vix_ttl._envelope import Header, open_envelope, seal
from vix_ttl.breaker import VIXCircuitBreaker
from vix_ttl.decorator import _BYPASS, _ERROR, _HIT, _MISS, _STALE, _Call, vix_cached
from vix_ttl.registry import get_breaker
from vix_ttl.status import VixStatus

__all__ = ["MEMCACHED_MAX_TTL", "VixPlugin", "VixSerializer", "backend_ttl", "cached"]

MEMCACHED_MAX_TTL = 30 * 24 * 3600
"""memcached reads a larger expiry as an absolute Unix time."""

_MAX_KEY = 200  # memcached keys stop at 250 bytes; leave room for namespaces

# What VixSerializer.dumps decided, for VixPlugin's post hook; and the base TTL
# VixPlugin's pre hook hands to dumps. Context variables: one per task.
_handed_ttl: contextvars.ContextVar[float | None] = contextvars.ContextVar("vix_ttl_handed_ttl", default=None)
_decided: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("vix_ttl_decided", default=None)


def backend_ttl(cache: BaseCache, ttl: float) -> float | int:
    """The expiry to give *cache*'s backend for an entry decided to live *ttl* > 0 seconds.

    A TTL of 0 must never get here: aiocache's memory and memcached backends
    read 0 as "never expire", and Redis rejects it.
    """
    if isinstance(cache, MemcachedBackend):
        return min(math.ceil(ttl), MEMCACHED_MAX_TTL)  # whole seconds, rounded up
    if isinstance(cache, RedisBackend):
        return max(float(ttl), 0.001)  # a float goes out as PSETEX milliseconds; 0 ms is refused
    return float(ttl)


def _expire_seconds(cache: BaseCache, ttl: float) -> float | int:
    """``backend_ttl`` for ``expire``, which Redis and memcached take in whole seconds."""
    if isinstance(cache, SimpleMemoryBackend):
        return float(ttl)
    return min(math.ceil(ttl), MEMCACHED_MAX_TTL) if isinstance(cache, MemcachedBackend) else math.ceil(ttl)


def _identity(value: Any) -> Any:
    return value


def _inner_serializer(cache: BaseCache) -> BaseSerializer:
    serializer = cache.serializer
    return serializer.inner if isinstance(serializer, VixSerializer) else serializer


class AiocacheCall(_Call):
    """``vix_cached`` over an aiocache cache: entries are envelopes, ages are wall-clock."""

    def __init__(self, cache: BaseCache, *, prefix: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache = cache
        self._prefix = prefix
        inner = _inner_serializer(cache)
        self._dumps, self._loads = inner.dumps, inner.loads
        # aiocache wraps every command in asyncio.wait_for (a task per call);
        # we pass timeout=0 and bound the wait ourselves, for network backends only.
        self._timeout = None if isinstance(cache, SimpleMemoryBackend) else (cache.timeout or None)

    async def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        ttl, key, status, base = self._prepare(instance, args, kwargs)
        key = self.hashable(key)  # shared computations are found by key
        wire_key = self.wire_key(key)
        outcome = _BYPASS
        if ttl:
            outcome = _MISS
            try:
                async with asyncio.timeout(self._timeout):
                    raw = await self.cache.get(wire_key, loads_fn=_identity, timeout=0)
            except Exception as exc:
                self._faults.failed("get", exc)
                outcome = _ERROR
            else:
                if self._faults.failing:
                    self._faults.recovered()
                opened = None if raw is None else open_envelope(raw)
                if opened is not None:
                    header, payload = opened
                    if self._clock() - header.stored_at < min(header.ttl, ttl):
                        try:
                            value = self._loads(payload)
                        except Exception:
                            pass  # corrupt payload: a miss, recomputed and overwritten
                        else:
                            self._count(_HIT)
                            return value
                    else:
                        outcome = _STALE
        return await self._compute_async(
            key,
            outcome,
            lambda: wrapped(*args, **kwargs),
            lambda value: self._write(wire_key, value, Header(self._clock(), ttl, base, status.value)),
        )

    async def _write(self, wire_key: str, value: Any, header: Header) -> bool:
        """Store *value* in its envelope; False if the backend failed."""
        try:
            envelope = seal(header, self._dumps(value))
            async with asyncio.timeout(self._timeout):
                await self.cache.set(
                    wire_key, envelope, ttl=backend_ttl(self.cache, header.ttl), dumps_fn=_identity, timeout=0
                )
        except Exception as exc:
            self._faults.failed("set", exc)
            return False
        return True

    def wire_key(self, key: Hashable) -> str:
        """The backend key: the function's prefix and the call's key, hashed when long."""
        text = repr(key)
        if len(text) > _MAX_KEY or not text.isascii():
            text = hashlib.sha256(text.encode()).hexdigest()
        return f"{self._prefix}:{text}"

    async def cache_clear(self) -> None:
        """Delete this function's entries (memory and Redis; memcached cannot list keys)."""
        if isinstance(self.cache, MemcachedBackend):
            raise NotImplementedError(
                "memcached cannot delete entries by prefix: use invalidate(...) per key, "
                "or let the entries expire (their TTLs are short by design)"
            )
        await self.cache.clear(namespace=(self.cache.namespace or "") + self._prefix)
        self._reset_counts()

    async def invalidate(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        return bool(await self.cache.delete(self.wire_key(self.key(instance, args, kwargs))))


class VixSerializer(BaseSerializer):  # type: ignore[misc]
    """An aiocache serializer that stores an envelope and serves values only while fresh.

    Args:
        serializer: The serializer of the values (default: pickle); an
            instance, or in config dicts a dotted class path or
            ``{"class": path, **kwargs}``.
        breaker: A ``VIXCircuitBreaker`` or a registry name.
        status_of: Callable taking a value, returning its status (or a dotted
            path to one); the status is recorded into the breaker when the
            value is stored. Default: every value is NORMAL.
        ttl: The base TTL when ``set`` is given none (``VixPlugin`` hands
            over the one it is given).
        clock: Wall-clock seconds for stored-at times (entries cross
            processes); a ``FakeClock`` in tests.

    ``loads`` returns the value while its age is below both its stored TTL
    and the breaker's decision now for its status and base TTL; ``None`` (a
    miss) once it is not, and for anything that is not a valid envelope.

    Counters (``increment``) and aiocache's lock tokens are raw values, not
    envelopes: keep them in a cache without this serializer.
    """

    def __init__(
        self,
        serializer: BaseSerializer | str | dict[str, Any] | None = None,
        *,
        breaker: VIXCircuitBreaker | str = "default",
        status_of: Callable[[Any], VixStatus | str] | str | None = None,
        ttl: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.inner: BaseSerializer = _build(serializer) if serializer is not None else PickleSerializer()
        if not isinstance(self.inner, BaseSerializer):
            raise TypeError(f"VixSerializer: serializer must be an aiocache serializer, got {self.inner!r}")
        super().__init__(encoding=self.inner.encoding)
        self.breaker = get_breaker(breaker) if isinstance(breaker, str) else breaker
        if not isinstance(self.breaker, VIXCircuitBreaker):
            raise TypeError(f"VixSerializer: breaker must be a VIXCircuitBreaker or a name, got {breaker!r}")
        self.status_of = _resolve(status_of) if isinstance(status_of, str) else status_of
        if self.status_of is not None and not callable(self.status_of):
            raise TypeError(f"VixSerializer: status_of must be callable, got {status_of!r}")
        self.ttl = None if ttl is None else check_seconds("ttl", ttl)
        if not callable(clock):
            raise TypeError(f"VixSerializer: clock must be a zero-argument callable, got {clock!r}")
        self.clock = clock

    def dumps(self, value: Any) -> Any:
        status = VixStatus.NORMAL if self.status_of is None else VixStatus.coerce(self.status_of(value))
        base = _handed_ttl.get()
        base = self.ttl if base is None else base
        if base is None:
            raise ValueError(
                "VixSerializer needs a base TTL: pass ttl= to set() (with VixPlugin on the cache), "
                "give the cache a ttl, or build VixSerializer(ttl=...)"
            )
        ttl = self.breaker.observe(status, base)
        decided = _decided.get()
        if decided is not None:
            decided.append(ttl)
        return seal(Header(self.clock(), ttl, base, status.value), self.inner.dumps(value))

    def loads(self, value: Any) -> Any:
        opened = None if value is None else open_envelope(value)
        if opened is None:
            return None
        header, payload = opened
        decision = self.breaker.decide(header.status, header.base_ttl)
        if self.clock() - header.stored_at >= min(header.ttl, decision.ttl):
            return None
        try:
            return self.inner.loads(payload)
        except Exception:
            return None  # a corrupt payload is a miss, never an exception


class VixPlugin(BasePlugin):  # type: ignore[misc]
    """Hands ``set``'s TTL to ``VixSerializer`` and keeps each entry for its decided TTL.

    Without it, the serializer still serves only fresh values, but uses its
    own ``ttl`` as the base and the backend keeps entries for ``set``'s TTL.
    """

    async def pre_set(
        self, client: BaseCache, key: Any, value: Any, ttl: Any = SENTINEL, **kwargs: Any
    ) -> None:
        self._hand_over(client, ttl)

    async def post_set(
        self, client: BaseCache, key: Any, value: Any, ttl: Any = SENTINEL, **kwargs: Any
    ) -> None:
        await self._expire(client, [key], ttl, kwargs.get("namespace"))

    pre_add = pre_set
    post_add = post_set

    async def pre_multi_set(self, client: BaseCache, pairs: Any, ttl: Any = SENTINEL, **kwargs: Any) -> None:
        self._hand_over(client, ttl)

    async def post_multi_set(self, client: BaseCache, pairs: Any, ttl: Any = SENTINEL, **kwargs: Any) -> None:
        await self._expire(client, [key for key, _ in pairs], ttl, kwargs.get("namespace"))

    @staticmethod
    def _hand_over(client: BaseCache, ttl: Any) -> None:
        given = client.ttl if ttl is SENTINEL else ttl
        _handed_ttl.set(None if given is None else check_seconds("ttl", given))
        _decided.set([])

    @staticmethod
    async def _expire(client: BaseCache, keys: list[Any], ttl: Any, namespace: str | None) -> None:
        decided = _decided.get() or []
        _handed_ttl.set(None)
        _decided.set(None)
        given = client.ttl if ttl is SENTINEL else ttl
        for key, seconds in zip(keys, decided, strict=False):
            if seconds == 0:
                await client.delete(key, namespace=namespace)  # a bypass must not linger
            elif seconds != given:
                await client.expire(key, _expire_seconds(client, seconds), namespace=namespace)


class cached(_aiocache_cached):  # type: ignore[misc]  # noqa: N801 - aiocache's name
    """aiocache's ``cached`` with adaptive TTLs: ``vix_cached`` over the cache it builds.

    Takes aiocache's arguments (``ttl``, ``key``, ``key_builder``, ``namespace``,
    ``cache``, ``serializer``, ``plugins``, ``alias``, backend kwargs) and
    vix_cached's (``status``, ``warning_ttl``, ``breaker``, ``coalesce``).
    ``None`` results are cached. ``ttl`` defaults to the cache's own ``ttl``.

    Not supported: ``skip_cache_func``, ``noself`` (keys of methods include the
    instance) and the per-call ``cache_read`` / ``cache_write`` /
    ``aiocache_wait_for_write`` arguments.
    """

    def __init__(
        self,
        ttl: Any = SENTINEL,
        *,
        status: Callable[..., VixStatus | str] | None = None,
        warning_ttl: float | None = None,
        breaker: VIXCircuitBreaker | str | None = None,
        coalesce: bool = True,
        **kwargs: Any,
    ) -> None:
        for unsupported in ("skip_cache_func", "noself"):
            if unsupported in kwargs:
                raise TypeError(f"vix_ttl.aiocache.cached does not support {unsupported}=")
        super().__init__(ttl=ttl, **kwargs)
        self._vix = {
            "status": status or (lambda *args, **kwargs: VixStatus.NORMAL),
            "warning_ttl": warning_ttl,
            "breaker": breaker,
            "coalesce": coalesce,
        }

    def __call__(self, f: Callable[..., Any]) -> Any:
        super().__call__(f)  # builds self.cache from alias or arguments, as aiocache does
        ttl = self.cache.ttl if self.ttl is SENTINEL else self.ttl
        if ttl is None:
            raise ValueError("vix_ttl.aiocache.cached needs a ttl: pass ttl= or give the cache one")

        def key(*args: Any, **kwargs: Any) -> Hashable:
            return self.get_cache_key(f, args, kwargs)  # type: ignore[no-any-return]

        return vix_cached(ttl, key=key, cache=self.cache, **self._vix)(f)  # type: ignore[arg-type]


def _build(spec: BaseSerializer | str | dict[str, Any]) -> BaseSerializer:
    if isinstance(spec, str):
        return _resolve(spec)()
    if isinstance(spec, dict):
        spec = dict(spec)
        return _resolve(spec.pop("class"))(**spec)
    return spec


def _resolve(path: str) -> Any:
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot import {path!r} (expected 'package.module.name'): {exc}") from None
