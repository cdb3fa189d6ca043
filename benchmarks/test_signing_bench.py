"""What signing entries costs on a hit: signed / unsigned, on a 1 KB value, measured in one run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiocache import RedisCache, SimpleMemoryCache
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.conftest import awaits, compare
from tests.conftest import server_ports
from vix_ttl import VIXCircuitBreaker, vix_cached
from vix_ttl.aiocache import VixPlugin, VixSerializer

SECRET = "benchmark-secret-0123456789abcdef"
VALUE = {"match": 42, "odds": "x" * 1000}  # about 1 KB once serialized


def redis_port() -> int:
    port = server_ports("REDIS_PORT", "Redis")[0]
    return port


def decorated_hit(
    loop: asyncio.AbstractEventLoop, cache: Any, secret: str | None
) -> Callable[[], Awaitable[Any]]:
    @vix_cached(60, status=lambda match: "normal", breaker=VIXCircuitBreaker(), cache=cache, secret=secret)
    async def price(match: int) -> dict[str, Any]:
        return VALUE

    loop.run_until_complete(price(42))
    return lambda: price(42)


def serializer_hit(loop: asyncio.AbstractEventLoop, cache: Any) -> Callable[[], Awaitable[Any]]:
    loop.run_until_complete(cache.set("bench:1kb", VALUE, ttl=60))
    return lambda: cache.get("bench:1kb")


@pytest.mark.benchmark(group="signing")
def test_signed_redis_hit_vs_unsigned(benchmark: BenchmarkFixture, loop: asyncio.AbstractEventLoop) -> None:
    port = redis_port()
    signed_cache = RedisCache(endpoint="127.0.0.1", port=port, namespace="signed:")
    plain_cache = RedisCache(endpoint="127.0.0.1", port=port, namespace="plain:")
    compare(
        benchmark,
        "@vix_cached Redis hit, 1 KB value: signed / unsigned",
        awaits(loop, decorated_hit(loop, signed_cache, SECRET)),
        awaits(loop, decorated_hit(loop, plain_cache, None)),
        1.1,
        blocks=10,
        n=200,
    )
    for cache in (signed_cache, plain_cache):
        loop.run_until_complete(cache.close())


@pytest.mark.benchmark(group="signing")
def test_signed_serializer_hit_in_process_vs_unsigned(
    benchmark: BenchmarkFixture, loop: asyncio.AbstractEventLoop
) -> None:
    # VixSerializer does not know its backend, so it signs even in memory: the worst case.
    def cache(secret: str | None) -> SimpleMemoryCache:
        return SimpleMemoryCache(serializer=VixSerializer(secret=secret), plugins=[VixPlugin()])

    compare(
        benchmark,
        "VixSerializer hit on SimpleMemoryCache, 1 KB value: signed / unsigned",
        awaits(loop, serializer_hit(loop, cache(SECRET))),
        awaits(loop, serializer_hit(loop, cache(None))),
        1.1,
        n=500,
    )


@pytest.mark.benchmark(group="signing")
def test_signed_serializer_hit_on_redis_vs_unsigned(
    benchmark: BenchmarkFixture, loop: asyncio.AbstractEventLoop
) -> None:
    port = redis_port()

    def cache(secret: str | None, namespace: str) -> RedisCache:
        return RedisCache(
            endpoint="127.0.0.1",
            port=port,
            namespace=namespace,
            serializer=VixSerializer(secret=secret),
            plugins=[VixPlugin()],
        )

    signed, plain = cache(SECRET, "signed:"), cache(None, "plain:")
    compare(
        benchmark,
        "VixSerializer hit on RedisCache, 1 KB value: signed / unsigned",
        awaits(loop, serializer_hit(loop, signed)),
        awaits(loop, serializer_hit(loop, plain)),
        1.1,
        blocks=10,
        n=200,
    )
    for each in (signed, plain):
        loop.run_until_complete(each.close())
