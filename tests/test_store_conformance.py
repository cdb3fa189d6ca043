"""vix_ttl.testing's store conformance suite, run against every store vix_ttl ships."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cachetools
import pytest
from aiocache import Cache
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.sentinel import Sentinel

from tests.conftest import SENTINEL_MASTER
from vix_ttl.store import Function, MappingStore, Store
from vix_ttl.testing import StoreConformance

PLUGINS = Path(__file__).parent / "plugins"
"""A distribution's metadata declaring the entry point of ``BOXED`` (what installing a
third-party store's package would write)."""


class TestDefaultStore(StoreConformance):
    kinds = ("sync", "async")

    @pytest.fixture
    def new_cache(self) -> Callable[[], Any]:
        return lambda: None  # each function's own FIFO


class TestCachetoolsStore(StoreConformance):
    kinds = ("sync", "async")

    @pytest.fixture
    def new_cache(self) -> Callable[[], Any]:
        return lambda: cachetools.TTLCache(maxsize=100, ttl=3600)


class TestAiocacheMemoryStore(StoreConformance):
    @pytest.fixture
    def new_cache(self) -> Callable[[], Any]:
        return lambda: Cache(Cache.MEMORY)


class TestAiocacheRedisStore(StoreConformance):
    @pytest.fixture
    def new_cache(self, redis_port: int) -> Callable[[], Any]:
        return lambda: Cache(Cache.REDIS, endpoint="127.0.0.1", port=redis_port)


class TestAiocacheMemcachedStore(StoreConformance):
    clears = False

    @pytest.fixture
    def new_cache(self, memcached_port: int) -> Callable[[], Any]:
        return lambda: Cache(Cache.MEMCACHED, endpoint="127.0.0.1", port=memcached_port)


class TestRedisClientStore(StoreConformance):
    @pytest.fixture
    def new_cache(self, redis_port: int) -> Callable[[], Any]:
        return lambda: Redis(port=redis_port)


class TestRedisClientReadingTextStore(StoreConformance):
    @pytest.fixture
    def new_cache(self, redis_port: int) -> Callable[[], Any]:
        return lambda: Redis(port=redis_port, decode_responses=True)


class TestRedisClusterStore(StoreConformance):
    @pytest.fixture
    def new_cache(self, cluster_ports: list[int]) -> Callable[[], Any]:
        return lambda: RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", port) for port in cluster_ports])


class TestRedisSentinelStore(StoreConformance):
    @pytest.fixture
    def new_cache(self, sentinel_ports: list[int]) -> Callable[[], Any]:
        return lambda: Sentinel([("127.0.0.1", port) for port in sentinel_ports]).master_for(SENTINEL_MASTER)


class Box:
    """A third party's cache: not a mapping, so no built-in adapter takes it."""

    def __init__(self) -> None:
        self.entries: dict[Any, Any] = {}


class BoxedStore(MappingStore):
    """A store of a third party's, reading through ``read`` (the engine's own hit path is
    the built-in mapping store's only)."""


class _BoxAdapter:
    def accepts(self, cache: object) -> bool:
        return isinstance(cache, Box)

    def store(self, cache: Any, function: Function) -> Store:
        return BoxedStore(cache.entries, function)


BOXED = _BoxAdapter()


class TestThirdPartyStoreFoundThroughItsEntryPoint(StoreConformance):
    kinds = ("sync", "async")

    @pytest.fixture
    def new_cache(self, monkeypatch: pytest.MonkeyPatch) -> Callable[[], Any]:
        monkeypatch.syspath_prepend(str(PLUGINS))
        return Box
