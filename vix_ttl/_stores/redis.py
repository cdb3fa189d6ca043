"""The native Redis store of ``@vix_cached``: redis-py's own asyncio clients, Cluster and Sentinel too.

``cache=`` takes a ``redis.asyncio.Redis`` (``Redis.from_url(...)``), a
``redis.asyncio.RedisCluster`` (a sharded cluster; aiocache 0.12 has no cluster
support) or a Sentinel master client (``Sentinel(...).master_for(name)``, which
follows failovers). A ``Backend`` of ``vix_ttl._cache.shared``, with every rule of
the aiocache store: envelopes, signing, stable keys, leases, stale serving, monotonic
reads, fail open. Keys are the wire keys themselves (``vix_ttl:<namespace>|...``): no
brace, so a cluster hashes each whole key and spreads calls over its slots. Values
are ``vix_ttl._typed``'s: bytes, or text for a client with ``decode_responses=True``.
Found by ``vix_cached`` through the ``vix_ttl.stores`` entry point ``redis``: the core
never imports this module. It imports redis: the edge of vix_ttl.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from typing import Any

from vix_ttl._checks import missing_extra

try:
    import redis
    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster
except ImportError as exc:
    raise missing_extra("vix_ttl._stores.redis", "redis", exc) from exc

from vix_ttl import _typed as typed
from vix_ttl._budget import Commands
from vix_ttl._cache.api import Store
from vix_ttl._cache.options import Function
from vix_ttl._cache.shared import Payload, SharedStore
from vix_ttl._lease import LeaseStore
from vix_ttl._redis import (
    RedisLeases,
    bury,
    decodes_responses,
    milliseconds,
    pool_slots,
    scan_and_bury,
    socket_timeout,
)

__all__ = ["ADAPTER", "DEFAULT_TIMEOUT", "RedisClientBackend"]

DEFAULT_TIMEOUT = 5.0
"""A call's budget for its commands when the client sets no ``socket_timeout`` (as aiocache's default)."""

_ASYNC = (redis.asyncio.Redis, RedisCluster)
_SYNC = (redis.Redis, redis.cluster.RedisCluster)


class _Adapter:
    """The ``vix_ttl.stores`` entry point: redis-py clients, for coroutine functions."""

    def accepts(self, cache: object) -> bool:
        return isinstance(cache, _ASYNC + _SYNC)

    def store(self, cache: Any, function: Function) -> Store:
        if isinstance(cache, _SYNC):
            raise TypeError(
                f"vix_cached({function.name}): cache= takes redis-py's asyncio clients "
                f"(redis.asyncio.Redis, redis.asyncio.RedisCluster, a redis.asyncio.sentinel master), "
                f"got the synchronous {type(cache).__qualname__}"
            )
        if not function.is_async:
            raise TypeError(
                f"vix_cached({function.name}): a Redis client serves async functions only; "
                f"use cache=None or a cachetools cache for a sync function"
            )
        return SharedStore(RedisClientBackend(cache), cache, function)


ADAPTER = _Adapter()

# vix_ttl's own serializer: bytes, or text for a client that decodes what it reads.
_BYTES = Payload(typed.dumps, typed.loads, keeps_types=True, runs_code=False, name="vix_ttl")
_TEXT = _BYTES._replace(dumps=typed.dumps_text)


class RedisClientBackend:
    """A redis-py asyncio client (plain, cluster or Sentinel) as a shared store of envelopes."""

    in_process = False

    def __init__(self, client: Any) -> None:
        self._client = client
        self.payload = _TEXT if decodes_responses(client) else _BYTES
        self.name = type(client).__name__
        # A call's budget: the client's socket_timeout (else DEFAULT_TIMEOUT).
        self.commands = Commands(socket_timeout(client) or DEFAULT_TIMEOUT, slots=pool_slots(client))
        self.leases: LeaseStore = RedisLeases(client, self.commands, self.stored_key)

    def stored_key(self, key: Any) -> bytes:
        return str(key).encode()

    def tomb_key(self, key: Any) -> str:
        # Hash-tagged by the entry's key: in its slot, so that a cluster reads both at once.
        return "{" + str(key) + "}|gone"

    async def get(self, key: Any) -> tuple[Any, Any]:
        entry, tombstone = await self._client.mget(self.stored_key(key), self.stored_key(self.tomb_key(key)))
        return entry, tombstone

    async def set(self, key: Any, envelope: Any, ttl: float) -> None:
        expiry = None if ttl == math.inf else milliseconds(ttl)
        await self._client.set(self.stored_key(key), envelope, px=expiry)

    async def delete(self, key: Any) -> bool:
        return bool(await self._client.delete(self.stored_key(key)))

    async def bury(self, key: Any, tombstone: Any, ttl: float) -> bool:
        tomb = self.stored_key(self.tomb_key(key))
        return bool(await bury(self._client, [(self.stored_key(key), tomb, tombstone)], ttl))

    def clear(self, prefix: str, tombstone: Callable[[Any, Any], Any], ttl: float) -> AsyncIterator[None]:
        def tomb(stored: bytes, entry: Any) -> tuple[bytes, Any]:
            key = stored.decode() if isinstance(stored, bytes) else stored  # decode_responses=True: text
            return self.stored_key(self.tomb_key(key)), tombstone(key, entry)

        return scan_and_bury(self._client, prefix, tomb, ttl)
