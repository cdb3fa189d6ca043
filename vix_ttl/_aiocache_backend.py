"""What aiocache's backends take and give: expiries, keys as stored, raw values, faults.

Shared by vix_ttl's aiocache serializer, plugin and store (``vix_ttl.aiocache``,
``vix_ttl._aiocache_store``). This module imports aiocache: the edge of vix_ttl.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from typing import Any

from vix_ttl._checks import missing_extra

try:
    from aiocache.backends.memcached import MemcachedBackend
    from aiocache.backends.memory import SimpleMemoryBackend
    from aiocache.backends.redis import RedisBackend
    from aiocache.base import BaseCache
    from aiocache.serializers import BaseSerializer, PickleSerializer
except ImportError as exc:
    raise missing_extra("vix_ttl.aiocache", "aiocache", exc) from exc

__all__ = [
    "MEMCACHED_MAX_KEY",
    "MEMCACHED_MAX_TTL",
    "Leases",
    "RejectedEntryError",
    "Slots",
    "backend_ttl",
    "connection_slots",
    "expire_seconds",
    "identity",
    "key_bytes",
    "memcached_safe",
    "pickle_needs_secret",
    "runs_code",
]

MEMCACHED_MAX_TTL = 30 * 24 * 3600
"""memcached reads a larger expiry as an absolute Unix time."""

MEMCACHED_MAX_KEY = 250
"""Bytes; and no spaces or control characters."""


class RejectedEntryError(Exception):
    """Why an entry read from a shared store was not served (logged, never raised to callers)."""


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
    """Whether decoding with *serializer* can run code an entry's writer chose."""
    return isinstance(serializer, PickleSerializer)


def pickle_needs_secret(owner: str) -> ValueError:
    return ValueError(
        f"{owner}: this serializer unpickles, and unpickling an entry runs whatever code its "
        f"writer put in it: anyone who can write to the cache server could run code here. "
        f"Pass secret= (entries are then signed, and unsigned or forged ones are never "
        f"unpickled), or use aiocache's JsonSerializer (the default)"
    )


def key_bytes(cache: BaseCache, key: str, namespace: str | None = None) -> bytes:
    """The key as the backend stores it (namespace included): what a signature covers."""
    built = cache.build_key(key, namespace)
    return built if isinstance(built, bytes) else str(built).encode()


def memcached_safe(key: str) -> bool:
    """Whether memcached stores *key* as it is (aiocache rewrites spaces; memcached refuses the rest)."""
    return len(key) <= MEMCACHED_MAX_KEY and all(" " < char < "\x7f" for char in key)


class Slots:
    """As many commands at once as a connection pool has connections: a full pool is waited for.

    redis-py's asyncio ``ConnectionPool`` raises "Too many connections" at its size (100
    by default) instead of waiting: a burst of callers would each fail open and compute.
    A semaphore of the pool's size, per event loop, makes the surplus wait instead,
    within the call's timeout.
    """

    __slots__ = ("_loop", "_semaphore", "_size")

    def __init__(self, size: int) -> None:
        self._size = size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._semaphore = asyncio.Semaphore(size)

    def get(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a semaphore belongs to one loop
            self._loop, self._semaphore = loop, asyncio.Semaphore(self._size)
        return self._semaphore


_slots: weakref.WeakKeyDictionary[Any, Slots] = weakref.WeakKeyDictionary()


def connection_slots(cache: BaseCache) -> Slots | None:
    """The slots of *cache*'s connection pool, shared by everything using it (None: it waits itself)."""
    if not isinstance(cache, RedisBackend):
        return None  # aiomcache's pool waits; aiocache's memory needs no connection
    pool = cache.client.connection_pool
    size = getattr(pool, "max_connections", None)
    if not isinstance(size, int) or type(pool).__name__ == "BlockingConnectionPool":
        return None
    slots = _slots.get(pool)
    if slots is None:
        slots = _slots[pool] = Slots(size)
    return slots


# -- leases ---------------------------------------------------------------------------
# Redis compares and writes in one script; memcached with gets / cas; aiocache's memory
# backend never yields between a read and a write, so its commands compose atomically.
_SWAP = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) and 1 end return 0"
)
_DROP = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class Leases:
    """The lease commands (``vix_ttl._lease.LeaseStore``) of one aiocache cache.

    *bounded* runs one command within a budget (None: one timeout of its own).
    Lease values are short ASCII strings, stored raw (no serializer, no envelope).
    """

    def __init__(self, cache: BaseCache, bounded: Any) -> None:
        self._cache, self._bounded = cache, bounded
        self._redis = isinstance(cache, RedisBackend)
        self._memcached = isinstance(cache, MemcachedBackend)

    def _name(self, name: str) -> bytes:
        return key_bytes(self._cache, name)

    @staticmethod
    def _seconds(seconds: float) -> int:
        """A memcached expiry that lasts at least *seconds*: its clock ticks in whole seconds, and
        an item set just before a tick loses that tick."""
        return math.ceil(seconds) + 1

    async def add(self, name: str, value: str, seconds: float, budget: Any) -> bool:
        cache = self._cache
        if self._redis:
            key, ms = self._name(name), math.ceil(seconds * 1000)
            return bool(await self._bounded(lambda: cache.client.set(key, value, nx=True, px=ms), budget))
        if self._memcached:
            key, expiry = self._name(name), self._seconds(seconds)
            return bool(
                await self._bounded(lambda: cache.client.add(key, value.encode(), exptime=expiry), budget)
            )
        try:
            await cache.add(name, value, ttl=seconds, dumps_fn=identity, timeout=0)
        except ValueError:  # aiocache's "key already exists"
            return False
        return True

    async def peek(self, name: str, budget: Any) -> str | None:
        cache = self._cache
        if self._redis or self._memcached:
            held = await self._bounded(lambda: cache.client.get(self._name(name)), budget)
            return None if held is None else bytes(held).decode("latin-1")
        held = await cache.get(name, loads_fn=identity, timeout=0)
        return None if held is None else str(held)

    async def swap(self, name: str, old: str, new: str, seconds: float, budget: Any) -> bool:
        cache = self._cache
        if self._redis:
            key, ms = self._name(name), math.ceil(seconds * 1000)
            return bool(await self._bounded(lambda: cache.client.eval(_SWAP, 1, key, old, new, ms), budget))
        if self._memcached:
            key = self._name(name)
            held, token = await self._bounded(lambda: cache.client.gets(key), budget)
            if held is None or bytes(held).decode("latin-1") != old:
                return False
            return bool(
                await self._bounded(
                    lambda: cache.client.cas(key, new.encode(), token, exptime=self._seconds(seconds)), budget
                )
            )
        if await self.peek(name, budget) != old:
            return False
        await cache.set(name, new, ttl=seconds, dumps_fn=identity, timeout=0)
        return True

    async def put(self, name: str, value: str, seconds: float, budget: Any) -> None:
        cache = self._cache
        if self._redis:
            key, ms = self._name(name), math.ceil(seconds * 1000)
            await self._bounded(lambda: cache.client.set(key, value, px=ms), budget)
        elif self._memcached:
            key, expiry = self._name(name), self._seconds(seconds)
            await self._bounded(lambda: cache.client.set(key, value.encode(), exptime=expiry), budget)
        else:
            await cache.set(name, value, ttl=seconds, dumps_fn=identity, timeout=0)

    async def drop(self, name: str, value: str, budget: Any) -> None:
        cache = self._cache
        if self._redis:
            await self._bounded(lambda: cache.client.eval(_DROP, 1, self._name(name), value), budget)
        elif self._memcached:
            # No atomic compare-and-delete: a lease renewed until now cannot have lapsed
            # and been taken by another process in the moment between the two commands.
            key = self._name(name)
            if await self.peek(name, budget) == value:
                await self._bounded(lambda: cache.client.delete(key), budget)
        elif await self.peek(name, budget) == value:
            await cache.delete(name, timeout=0)
