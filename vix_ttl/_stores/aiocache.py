"""The aiocache store of ``@vix_cached``: memory, Redis and memcached, through aiocache 0.12.

A ``Backend`` of ``vix_ttl._cache.shared``: envelopes go to the backend raw (the
engine encodes them), under the cache's own namespace, with the cache's
serializer for the values (``VixSerializer``'s inner one, and its secret). Found by
``vix_cached`` through the ``vix_ttl.stores`` entry point ``aiocache``: the core
never imports this module. It imports aiocache: the edge of vix_ttl.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from aiocache.backends.memcached import MemcachedBackend
from aiocache.backends.memory import SimpleMemoryBackend
from aiocache.backends.redis import RedisBackend
from aiocache.base import BaseCache
from aiocache.serializers import JsonSerializer, NullSerializer, PickleSerializer

from vix_ttl import _typed as typed
from vix_ttl._aiocache_backend import (
    aiocache_leases,
    backend_ttl,
    identity,
    key_bytes,
    memcached_safe,
    runs_code,
)
from vix_ttl._budget import Commands
from vix_ttl._cache.api import Store
from vix_ttl._cache.options import Function
from vix_ttl._cache.shared import Payload, SharedStore
from vix_ttl._checks import check_seconds
from vix_ttl._keys import digest
from vix_ttl._redis import pool_slots, scan_and_bury
from vix_ttl.aiocache import VixSerializer

__all__ = ["ADAPTER", "AiocacheBackend"]


class _Adapter:
    """The ``vix_ttl.stores`` entry point: aiocache caches, for coroutine functions."""

    def accepts(self, cache: object) -> bool:
        return isinstance(cache, BaseCache)

    def store(self, cache: Any, function: Function) -> Store:
        if not function.is_async:
            raise TypeError(
                f"vix_cached({function.name}): an aiocache cache serves async functions only; "
                f"use cache=None or a cachetools cache for a sync function"
            )
        return SharedStore(AiocacheBackend(cache, function.name), cache, function)


ADAPTER = _Adapter()


class AiocacheBackend:
    """An aiocache cache as a shared store of envelopes."""

    def __init__(self, cache: BaseCache, owner: str) -> None:
        self._cache = cache
        self.name = type(cache).__name__
        self.in_process = isinstance(cache, SimpleMemoryBackend)
        wrapper = cache.serializer if isinstance(cache.serializer, VixSerializer) else None
        inner = cache.serializer if wrapper is None else wrapper.inner
        if wrapper is None and type(inner) is JsonSerializer:
            # aiocache's default: nobody but vix_cached reads its envelopes, so they hold
            # vix_ttl's own serializer's text, which keeps tuples, int keys and the rest.
            self.payload = Payload(
                typed.dumps_text, typed.loads, keeps_types=True, runs_code=False, name="vix_ttl"
            )
        else:
            # A value the serializer hands back changed ((1, 2) -> [1, 2] in JSON) would be a wrong
            # value on every hit: such values are not stored. Pickle keeps types, NullSerializer the object.
            self.payload = Payload(
                inner.dumps,
                inner.loads,
                keeps_types=isinstance(inner, PickleSerializer | NullSerializer),
                runs_code=runs_code(inner),
                name=type(inner).__qualname__,
                signer=None if wrapper is None else wrapper.signer,
            )
        # aiocache wraps every command in asyncio.wait_for (a task per call): we pass
        # timeout=0 and bound the wait ourselves, for network backends only. aiomcache hands
        # a cancelled command's connection back to its pool with the reply still coming,
        # so a memcached command that takes too long is left to finish on its own.
        timeout = None if self.in_process else _checked_timeout(cache, owner)
        slots = pool_slots(cache.client) if isinstance(cache, RedisBackend) else None
        self.commands = Commands(timeout, slots=slots, detach=isinstance(cache, MemcachedBackend))
        self.leases = aiocache_leases(cache, self.commands)

    def stored_key(self, key: Any) -> bytes:
        return key_bytes(self._cache, key)

    def tomb_key(self, key: Any) -> str:
        # "vix_ttl|", never "vix_ttl:": no namespace's prefix matches it (cache_clear leaves it).
        tomb = f"vix_ttl|gone|{key}"
        if isinstance(self._cache, MemcachedBackend) and not memcached_safe(
            f"{self._cache.namespace or ''}{tomb}"
        ):
            tomb = f"vix_ttl|gone|{digest(str(key))}"
        return tomb

    async def get(self, key: Any) -> tuple[Any, Any]:
        if self.in_process:  # nobody else writes to it: nothing is replayed
            return await self._cache.get(key, loads_fn=identity, timeout=0), None
        entry, tombstone = await self._cache.multi_get(
            [key, self.tomb_key(key)], loads_fn=identity, timeout=0
        )
        return entry, tombstone

    async def set(self, key: Any, envelope: Any, ttl: float) -> None:
        expiry = backend_ttl(self._cache, ttl)
        await self._cache.set(key, envelope, ttl=expiry, dumps_fn=identity, timeout=0)

    async def delete(self, key: Any) -> bool:
        return bool(await self._cache.delete(key, timeout=0))

    async def bury(self, key: Any, tombstone: Any, ttl: float) -> bool:
        if not self.in_process:
            await self.set(self.tomb_key(key), tombstone, ttl)
        return await self.delete(key)

    async def clear(
        self, prefix: str, tombstone: Callable[[Any, Any], Any], ttl: float
    ) -> AsyncIterator[None]:
        cache = self._cache
        if isinstance(cache, MemcachedBackend):
            raise NotImplementedError(
                "memcached cannot delete entries by prefix: use invalidate(...) per key, "
                "or let the entries expire (their TTLs are short by design)"
            )
        if isinstance(cache, RedisBackend):
            # aiocache's clear(namespace) matches "<namespace>:*"; ours is a plain prefix. The
            # keys found hold the cache's namespace: their tombstones' keys are built from them.
            namespace = self.stored_key("")

            def tomb(stored: bytes, entry: Any) -> tuple[bytes, Any]:
                key = stored[len(namespace) :].decode()  # aiocache's client reads bytes
                return self.stored_key(self.tomb_key(key)), tombstone(key, entry)

            async for step in scan_and_bury(cache.client, prefix, tomb, ttl):
                yield step
        else:
            await cache.clear(namespace=prefix)
            yield


def _checked_timeout(cache: BaseCache, name: str) -> float | None:
    """The cache's ``timeout`` as vix_ttl's budget per call (None or 0: unbounded)."""
    if not cache.timeout:
        return None
    try:
        return check_seconds("the cache's timeout", cache.timeout, positive=True)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"vix_cached({name}): {exc} (None or 0: no timeout)") from None
