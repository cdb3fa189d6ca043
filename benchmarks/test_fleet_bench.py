"""Fleet mode: the hot path makes no network call; a flush is one round trip."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.conftest import calls, compare, report
from tests.conftest import require_server
from vix_ttl import VIXCircuitBreaker, VixStatus
from vix_ttl.fleet import RedisWindow

NORMAL = VixStatus.NORMAL


def redis_url() -> str:
    port = int(os.environ.get("REDIS_PORT", "6390"))
    require_server("Redis", port)
    return f"redis://127.0.0.1:{port}/0"


@pytest.mark.benchmark(group="fleet")
def test_record_with_the_redis_window_vs_the_local_window(benchmark: BenchmarkFixture) -> None:
    fleet = VIXCircuitBreaker(window=RedisWindow(redis_url(), name=f"bench-{uuid.uuid4().hex[:8]}"))
    local = VIXCircuitBreaker()
    compare(
        benchmark,
        "record, Redis window / local window",
        calls(lambda: fleet.record(NORMAL)),
        calls(lambda: local.record(NORMAL)),
        1.3,
    )


def test_flush_round_trip() -> None:
    window = RedisWindow(redis_url(), name=f"bench-{uuid.uuid4().hex[:8]}")
    breaker = VIXCircuitBreaker(window=window)
    timings = []
    for _ in range(50):
        for _ in range(1000):
            breaker.record(NORMAL)
        start = time.perf_counter()
        assert window.flush()
        timings.append(time.perf_counter() - start)
    timings.sort()
    report(
        f"fleet flush of 1,000 samples (one Lua script, one round trip): median "
        f"{timings[len(timings) // 2] * 1e3:.2f} ms, p90 {timings[int(len(timings) * 0.9)] * 1e3:.2f} ms"
    )
