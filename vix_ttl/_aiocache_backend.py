"""What aiocache's backends take and give: expiries, keys as stored, raw values, faults.

Shared by vix_ttl's aiocache serializer, plugin and store (``vix_ttl.aiocache``,
``vix_ttl._stores.aiocache``). This module imports aiocache: the edge of vix_ttl.
"""

from __future__ import annotations

import math
from typing import Any

from vix_ttl._budget import Budget, Commands
from vix_ttl._checks import missing_extra
from vix_ttl._lease import LeaseStore

try:
    from aiocache.backends.memcached import MemcachedBackend
    from aiocache.backends.memory import SimpleMemoryBackend
    from aiocache.backends.redis import RedisBackend
    from aiocache.base import BaseCache
    from aiocache.serializers import (
        BaseSerializer,
        JsonSerializer,
        MsgPackSerializer,
        NullSerializer,
        StringSerializer,
    )
except ImportError as exc:
    raise missing_extra("vix_ttl.aiocache", "aiocache", exc) from exc

from vix_ttl._redis import RedisLeases

__all__ = [
    "MEMCACHED_MAX_KEY",
    "MEMCACHED_MAX_TTL",
    "aiocache_leases",
    "backend_ttl",
    "expire_seconds",
    "identity",
    "key_bytes",
    "memcached_safe",
    "runs_code",
]

MEMCACHED_MAX_TTL = 30 * 24 * 3600
"""memcached reads a larger expiry as an absolute Unix time."""

MEMCACHED_MAX_KEY = 250
"""Bytes; and no spaces or control characters."""


def backend_ttl(cache: BaseCache, ttl: float) -> float | int | None:
    """The expiry to give *cache*'s backend for an entry decided to live *ttl* > 0 seconds.

    ``None`` for an infinite TTL (no expiry). A TTL of 0 must never get here:
    aiocache's memory and memcached backends read 0 as "never expire", and
    Redis rejects it.
    """
    if ttl == math.inf:
        return None
    if isinstance(cache, MemcachedBackend):
        return min(math.ceil(ttl), MEMCACHED_MAX_TTL)  # whole seconds, rounded up
    if isinstance(cache, RedisBackend):
        return max(float(ttl), 0.001)  # a float goes out as PSETEX milliseconds; 0 ms is refused
    return float(ttl)


def expire_seconds(cache: BaseCache, ttl: float) -> float | int:
    """``backend_ttl`` for ``expire``, which Redis and memcached take in whole seconds."""
    seconds = backend_ttl(cache, ttl)
    assert seconds is not None  # callers never expire an entry that lives forever
    return seconds if isinstance(cache, SimpleMemoryBackend) else math.ceil(seconds)


def identity(value: Any) -> Any:
    return value


def runs_code(serializer: BaseSerializer) -> bool:
    """Whether decoding with *serializer* may run code an entry's writer chose: yes, unless it
    is of a class known not to (exactly: a subclass may decode otherwise) or its class states
    ``runs_code = False`` (its author's word, an allowlist of their own)."""
    stated = getattr(type(serializer), "runs_code", None)
    if isinstance(stated, bool):
        return stated
    return not any(type(serializer) is safe for safe in _SAFE)  # `is`: a metaclass may define ==


# aiocache's serializers that decode data, never code (msgpack without ext hooks).
_SAFE = (NullSerializer, StringSerializer, JsonSerializer, MsgPackSerializer)


def key_bytes(cache: BaseCache, key: str, namespace: str | None = None) -> bytes:
    """The key as the backend stores it (namespace included): what a signature covers."""
    built = cache.build_key(key, namespace)
    return built if isinstance(built, bytes) else str(built).encode()


def memcached_safe(key: str) -> bool:
    """Whether memcached stores *key* as it is (aiocache rewrites spaces; memcached refuses the rest)."""
    return len(key) <= MEMCACHED_MAX_KEY and all(" " < char < "\x7f" for char in key)


# -- leases ---------------------------------------------------------------------------
# Redis compares and writes in one script (vix_ttl._redis); memcached with gets / cas;
# aiocache's memory backend never yields between a read and a write, so its commands
# compose atomically.


def aiocache_leases(cache: BaseCache, commands: Commands) -> LeaseStore:
    """The lease commands of *cache*, run by *commands*."""
    if isinstance(cache, RedisBackend):
        return RedisLeases(cache.client, commands, lambda name: key_bytes(cache, name))
    if isinstance(cache, MemcachedBackend):
        return _MemcachedLeases(cache, commands)
    return _MemoryLeases(cache)


class _MemcachedLeases:
    """Lease values are short ASCII strings, stored raw (no serializer, no envelope)."""

    def __init__(self, cache: MemcachedBackend, commands: Commands) -> None:
        self._cache, self._commands = cache, commands

    def _name(self, name: str) -> bytes:
        return key_bytes(self._cache, name)

    @staticmethod
    def _seconds(seconds: float) -> int:
        """An expiry that lasts at least *seconds*: memcached's clock ticks in whole seconds, and
        an item set just before a tick loses that tick."""
        return math.ceil(seconds) + 1

    async def add(self, name: str, value: str, seconds: float, budget: Budget | None) -> bool:
        client, key, expiry = self._cache.client, self._name(name), self._seconds(seconds)
        return bool(await self._commands.run(lambda: client.add(key, value.encode(), exptime=expiry), budget))

    async def peek(self, name: str, budget: Budget | None) -> str | None:
        client, key = self._cache.client, self._name(name)
        held = await self._commands.run(lambda: client.get(key), budget)
        return None if held is None else bytes(held).decode("latin-1")

    async def swap(self, name: str, old: str, new: str, seconds: float, budget: Budget | None) -> bool:
        client, key, expiry = self._cache.client, self._name(name), self._seconds(seconds)
        held, token = await self._commands.run(lambda: client.gets(key), budget)
        if held is None or bytes(held).decode("latin-1") != old:
            return False
        swapped = await self._commands.run(
            lambda: client.cas(key, new.encode(), token, exptime=expiry), budget
        )
        return bool(swapped)

    async def put(self, name: str, value: str, seconds: float, budget: Budget | None) -> None:
        client, key, expiry = self._cache.client, self._name(name), self._seconds(seconds)
        await self._commands.run(lambda: client.set(key, value.encode(), exptime=expiry), budget)

    async def drop(self, name: str, value: str, budget: Budget | None) -> None:
        # No atomic compare-and-delete: a lease renewed until now cannot have lapsed and
        # been taken by another process in the moment between the two commands.
        if await self.peek(name, budget) == value:
            client, key = self._cache.client, self._name(name)
            await self._commands.run(lambda: client.delete(key), budget)


class _MemoryLeases:
    def __init__(self, cache: BaseCache) -> None:
        self._cache = cache

    async def add(self, name: str, value: str, seconds: float, budget: Budget | None) -> bool:
        try:
            await self._cache.add(name, value, ttl=seconds, dumps_fn=identity, timeout=0)
        except ValueError:  # aiocache's "key already exists"
            return False
        return True

    async def peek(self, name: str, budget: Budget | None) -> str | None:
        held = await self._cache.get(name, loads_fn=identity, timeout=0)
        return None if held is None else str(held)

    async def swap(self, name: str, old: str, new: str, seconds: float, budget: Budget | None) -> bool:
        if await self.peek(name, budget) != old:
            return False
        await self.put(name, new, seconds, budget)
        return True

    async def put(self, name: str, value: str, seconds: float, budget: Budget | None) -> None:
        await self._cache.set(name, value, ttl=seconds, dumps_fn=identity, timeout=0)

    async def drop(self, name: str, value: str, budget: Budget | None) -> None:
        if await self.peek(name, budget) == value:
            await self._cache.delete(name, timeout=0)
