"""The hit path of @vix_cached against cachetools and aiocache, measured in one run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiocache
import pytest
from aiocache import RedisCache, SimpleMemoryCache
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.conftest import awaits, calls, compare
from benchmarks.peers import cachetools_hit
from tests.conftest import server_ports
from vix_ttl import TTLPolicy, VIXCircuitBreaker
from vix_ttl.decorator import vix_cached


def normal(match_id: int) -> str:
    return "normal"


def vix_sync_hit(policy: TTLPolicy | None = None) -> Callable[[], int]:
    @vix_cached(60, status=normal, breaker=VIXCircuitBreaker(policy=policy))
    def price(match_id: int) -> int:
        return match_id

    price(7)
    return lambda: price(7)


def vix_async_hit(loop: asyncio.AbstractEventLoop, cache: object = None) -> Callable[[], Awaitable[int]]:
    @vix_cached(60, status=normal, breaker=VIXCircuitBreaker(), cache=cache)
    async def price(match_id: int) -> int:
        return match_id

    loop.run_until_complete(price(7))
    return lambda: price(7)


@pytest.mark.benchmark(group="hit")
def test_sync_hit_vs_cachetools(benchmark: BenchmarkFixture) -> None:
    compare(
        benchmark,
        "@vix_cached sync hit / cachetools.cached(TTLCache) hit",
        calls(vix_sync_hit()),
        calls(cachetools_hit()),
        1.8,
    )


@pytest.mark.benchmark(group="hit")
def test_sync_hit_learned_vs_default(benchmark: BenchmarkFixture) -> None:
    """The learned policy's hit is the default's: each key's TTL is written with its entry
    at recomputation, and the hit path reads it as any entry's (goal: <= 1.1x)."""
    compare(
        benchmark,
        "@vix_cached sync hit, TTLPolicy.learned() / TTLPolicy.default()",
        calls(vix_sync_hit(TTLPolicy.learned())),
        calls(vix_sync_hit(TTLPolicy.default())),
        1.1,
    )


@pytest.mark.benchmark(group="hit")
def test_async_hit_vs_cachetools(benchmark: BenchmarkFixture, loop: asyncio.AbstractEventLoop) -> None:
    compare(
        benchmark,
        "@vix_cached async hit / cachetools.cached(TTLCache) sync hit",
        awaits(loop, vix_async_hit(loop)),
        calls(cachetools_hit()),
        3.0,
    )


@pytest.mark.benchmark(group="hit")
def test_async_hit_vs_aiocache_cached(benchmark: BenchmarkFixture, loop: asyncio.AbstractEventLoop) -> None:
    @aiocache.cached(ttl=60, cache=SimpleMemoryCache)  # type: ignore[untyped-decorator]
    async def price(match_id: int) -> int:
        return match_id

    loop.run_until_complete(price(7))
    compare(
        benchmark,
        "@vix_cached async hit / aiocache.cached hit (SimpleMemoryCache)",
        awaits(loop, vix_async_hit(loop)),
        awaits(loop, lambda: price(7)),
        0.15,
        n=500,
    )


@pytest.mark.benchmark(group="redis")
def test_redis_hit_vs_bare_get(benchmark: BenchmarkFixture, loop: asyncio.AbstractEventLoop) -> None:
    port = server_ports("REDIS_PORT", "Redis")[0]
    cache = RedisCache(endpoint="127.0.0.1", port=port)
    loop.run_until_complete(cache.set("bench:bare", "odds 1.85"))
    vix_hit = vix_async_hit(loop, cache)
    compare(
        benchmark,
        "@vix_cached Redis hit / bare RedisCache.get of the same key",
        awaits(loop, vix_hit),
        awaits(loop, lambda: cache.get("bench:bare")),
        1.2,
        blocks=10,
        n=200,
    )
    loop.run_until_complete(cache.close())


def every_thousand(hit: Callable[[], int], action: Callable[[], object]) -> Callable[[], int]:
    """*hit*, with *action* run once every 1,000 calls."""
    count = 0

    def call() -> int:
        nonlocal count
        count += 1
        if count % 1000 == 0:
            action()
        return hit()

    return call


@pytest.mark.benchmark(group="hit")
def test_sync_hit_with_the_prometheus_collector(benchmark: BenchmarkFixture) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from vix_ttl.prometheus import register

    registry = CollectorRegistry()
    register(registry)
    # A scrape every 1,000 hits: far more often than any Prometheus would.
    scraped = every_thousand(vix_sync_hit(), lambda: generate_latest(registry))
    plain = every_thousand(vix_sync_hit(), lambda: None)
    compare(
        benchmark,
        "@vix_cached sync hit, collector registered and scraped / no collector",
        calls(scraped),
        calls(plain),
        1.1,
    )


@pytest.mark.benchmark(group="redis")
def test_native_redis_hit_vs_aiocache_redis_hit(
    benchmark: BenchmarkFixture, loop: asyncio.AbstractEventLoop
) -> None:
    import redis.asyncio

    port = server_ports("REDIS_PORT", "Redis")[0]
    native = redis.asyncio.Redis(port=port)
    through_aiocache = RedisCache(endpoint="127.0.0.1", port=port)
    compare(
        benchmark,
        "@vix_cached Redis hit: native redis-py client / aiocache RedisCache",
        awaits(loop, vix_async_hit(loop, native)),
        awaits(loop, vix_async_hit(loop, through_aiocache)),
        1.1,
        blocks=10,
        n=200,
    )
    loop.run_until_complete(native.aclose())
    loop.run_until_complete(through_aiocache.close())
