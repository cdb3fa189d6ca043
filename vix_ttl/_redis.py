"""What redis-py clients take and give: expiries, connection slots, atomic lease commands.

Shared by the aiocache store's Redis backend and the native redis-py store (a
``redis.asyncio`` ``Redis``, ``RedisCluster`` or Sentinel master client). This module
imports redis: the edge of vix_ttl.
"""

from __future__ import annotations

import asyncio
import math
import re
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

from vix_ttl._budget import Budget, Commands
from vix_ttl._checks import check_seconds

__all__ = [
    "PoolSlots",
    "RedisLeases",
    "bury",
    "decodes_responses",
    "milliseconds",
    "pool_slots",
    "scan_and_bury",
    "socket_timeout",
]


async def scan_and_bury(
    client: Any, prefix: str, tombstone: Callable[[bytes, Any], tuple[bytes, Any]], ttl: float
) -> AsyncIterator[None]:
    """Replace the keys of an asyncio Redis or RedisCluster client that start with *prefix*
    by their tombstones (``tombstone(key, entry)``: its key and value, kept *ttl* seconds):
    a step for each ``SCAN`` of one node and the pipeline reading what it found, one for
    the pipeline writing.

    The prefix is matched as it is written: its glob characters (a namespace ``svc[ab]``
    of the cache's own, say) are escaped. A cluster is scanned node by node, and each
    tombstone lives in its entry's slot.
    """
    pattern = _GLOB.sub(r"\\\g<0>", prefix) + "*"
    nodes: list[Any] = [None]
    if hasattr(client, "get_primaries"):
        await client.initialize()  # a cluster client learns its nodes at its first command
        nodes = client.get_primaries()
    for node in nodes:
        cursor = 0
        while True:
            if node is None:
                cursor, keys = await client.scan(cursor, match=pattern, count=_SCANNED)
            else:
                cursors, keys = await client.scan(cursor, match=pattern, count=_SCANNED, target_nodes=node)
                cursor = cursors[node.name]
            if keys:
                async with client.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.get(key)
                    entries = await pipe.execute()
                yield  # reading and burying: a step each, each within a timeout of its own
                buried = [(key, *tombstone(key, entry)) for key, entry in zip(keys, entries, strict=True)]
                await bury(client, buried, ttl)
            yield
            if not cursor:
                break


async def bury(client: Any, entries: list[tuple[bytes, bytes, Any]], ttl: float) -> int:
    """For each ``(key, tomb_key, tombstone)``: write the tombstone for *ttl* seconds, then
    delete the key, in one pipeline; how many keys were there."""
    expiry = None if ttl == math.inf else milliseconds(ttl)
    async with client.pipeline(transaction=False) as pipe:
        for key, tomb_key, tombstone in entries:
            pipe.set(tomb_key, tombstone, px=expiry)
            pipe.delete(key)
        done = await pipe.execute()
    return sum(done[1::2])


_SCANNED = 200  # keys a SCAN step asks for: each costs three commands, and a step must fit a timeout
# (0.25 s is a common socket_timeout) on a busy machine: a cluster pipeline is Python-heavy
_GLOB = re.compile(r"[*?\[\]\\]")  # what Redis's glob-style MATCH reads as a pattern


def socket_timeout(client: Any) -> float | None:
    """A redis-py client's ``socket_timeout`` (plain, cluster or Sentinel; sync or asyncio), if set."""
    seconds = _settings(client).get("socket_timeout")
    return check_seconds("the Redis client's socket_timeout", seconds, positive=True) if seconds else None


def decodes_responses(client: Any) -> bool:
    """Whether a redis-py client hands back text (``decode_responses=True``) rather than bytes."""
    return bool(_settings(client).get("decode_responses"))


def _settings(client: Any) -> dict[str, Any]:
    settings = getattr(client, "connection_kwargs", None)
    if settings is None:  # a plain or Sentinel client: its pool's
        settings = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    return settings


def milliseconds(seconds: float) -> int:
    """A PX expiry for *seconds* > 0: whole milliseconds, at least 1 (Redis refuses 0)."""
    return max(1, math.ceil(seconds * 1000))


class PoolSlots:
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


_slots: weakref.WeakKeyDictionary[Any, PoolSlots] = weakref.WeakKeyDictionary()


def pool_slots(client: Any) -> PoolSlots | None:
    """The slots of *client*'s connections, shared by everything using them (None: the client waits).

    A plain or Sentinel client has one pool; a cluster client one per node, each as large
    as its ``max_connections``: as many commands at once as that keep every node's pool
    within its size.
    """
    pool = getattr(client, "connection_pool", None)
    if pool is None:  # a cluster client
        owner, size = client, getattr(client, "connection_kwargs", {}).get("max_connections")
    else:
        owner, size = pool, getattr(pool, "max_connections", None)
    if not isinstance(size, int) or type(pool).__name__ == "BlockingConnectionPool":
        return None
    slots = _slots.get(owner)
    if slots is None:
        slots = _slots[owner] = PoolSlots(size)
    return slots


# Compare-and-write and compare-and-delete, each atomic in one script; one key each, so
# a Redis Cluster runs them on the key's node. Everything here comes from this module.
_SWAP = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) and 1 end return 0"
)
_DROP = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class RedisLeases:
    """The lease commands (``vix_ttl._lease.LeaseStore``) over a redis-py asyncio client.

    *stored* turns a lease's name into the key the server holds (a cache's namespace first).
    """

    def __init__(self, client: Any, commands: Commands, stored: Callable[[str], bytes | str]) -> None:
        self._client, self._commands, self._stored = client, commands, stored

    async def add(self, name: str, value: str, seconds: float, budget: Budget | None) -> bool:
        key, ms = self._stored(name), milliseconds(seconds)
        return bool(await self._commands.run(lambda: self._client.set(key, value, nx=True, px=ms), budget))

    async def peek(self, name: str, budget: Budget | None) -> str | None:
        key = self._stored(name)
        held = await self._commands.run(lambda: self._client.get(key), budget)
        return None if held is None else bytes(held).decode("latin-1")

    async def swap(self, name: str, old: str, new: str, seconds: float, budget: Budget | None) -> bool:
        key, ms = self._stored(name), milliseconds(seconds)
        return bool(await self._commands.run(lambda: self._client.eval(_SWAP, 1, key, old, new, ms), budget))

    async def put(self, name: str, value: str, seconds: float, budget: Budget | None) -> None:
        key, ms = self._stored(name), milliseconds(seconds)
        await self._commands.run(lambda: self._client.set(key, value, px=ms), budget)

    async def drop(self, name: str, value: str, budget: Budget | None) -> None:
        key = self._stored(name)
        await self._commands.run(lambda: self._client.eval(_DROP, 1, key, value), budget)
