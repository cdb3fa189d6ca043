"""vix_ttl's default serializer for shared stores against aiocache's JSON one, in one run.

The same value both can hold (a dict of str keys, lists, floats, text): what keeping
tuples, int keys and the rest costs on a hit, where it is decoded. Then the whole hit
on Redis: ``@vix_cached`` over the native client (this serializer, bytes) against the
same over aiocache's ``RedisCache`` (its text form).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiocache import RedisCache
from aiocache.serializers import JsonSerializer
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.conftest import awaits, compare
from benchmarks.test_signing_bench import decorated_hit, redis_port
from vix_ttl import _typed as typed

VALUE = {
    "match": "match-42",
    "odds": [{"book": f"book-{n}", "home": 2.1 + n / 100, "draw": 3.4, "away": 3.05} for n in range(12)],
    "updated": "2026-06-11T20:00:00+02:00",
}


def decodes(loads: Callable[[Any], Any], payload: Any) -> Callable[[int], None]:
    def many(n: int) -> None:
        for _ in range(n):
            loads(payload)

    return many


@pytest.mark.benchmark(group="serializer")
def test_default_serializer_hit_vs_aiocache_json(benchmark: BenchmarkFixture) -> None:
    json = JsonSerializer()
    compare(
        benchmark,
        "decoding a hit, same value: vix_ttl's serializer / aiocache's JsonSerializer",
        decodes(typed.loads, typed.dumps(VALUE)),
        decodes(json.loads, json.dumps(VALUE)),
        1.3,
    )


@pytest.mark.benchmark(group="serializer")
def test_native_redis_hit_vs_aiocache_redis_hit(
    benchmark: BenchmarkFixture, loop: asyncio.AbstractEventLoop
) -> None:
    import redis.asyncio

    port = redis_port()
    native = redis.asyncio.Redis(port=port)
    through_aiocache = RedisCache(endpoint="127.0.0.1", port=port, namespace="through-aiocache:")
    compare(
        benchmark,
        "@vix_cached Redis hit, same value: native client (bytes) / aiocache RedisCache (text)",
        awaits(loop, decorated_hit(loop, native, None, VALUE)),
        awaits(loop, decorated_hit(loop, through_aiocache, None, VALUE)),
        1.1,
        blocks=10,
        n=200,
    )
    loop.run_until_complete(native.aclose())
    loop.run_until_complete(through_aiocache.close())
