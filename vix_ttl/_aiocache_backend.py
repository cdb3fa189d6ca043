"""What aiocache's backends take and give: expiries, keys as stored, raw values, faults.

Shared by vix_ttl's aiocache serializer, plugin and store (``vix_ttl.aiocache``,
``vix_ttl._aiocache_store``). This module imports aiocache: the edge of vix_ttl.
"""

from __future__ import annotations

import math
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
    "RejectedEntryError",
    "backend_ttl",
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
