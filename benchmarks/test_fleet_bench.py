"""Fleet mode: the hot path makes no network call; a flush is one round trip."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.conftest import calls, compare, report
from tests.conftest import server_ports
from vix_ttl import VIXCircuitBreaker, VixStatus
from vix_ttl.fleet import RedisWindow

NORMAL = VixStatus.NORMAL


def redis_url() -> str:
    port = server_ports("REDIS_PORT", "Redis")[0]
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


def test_the_cost_of_200_processes_flushing_one_window() -> None:
    """What a fleet of 200 processes costs Redis: one script per process per bucket (1 s)."""
    client = redis.Redis.from_url(redis_url())
    name = f"bench-{uuid.uuid4().hex[:8]}"
    windows = [RedisWindow(redis_url(), name=name) for _ in range(200)]
    breakers = [VIXCircuitBreaker(window=window) for window in windows]
    before = client.info("commandstats")
    rounds, started = 5, time.perf_counter()
    for _ in range(rounds):  # each round: every process flushes what it recorded since the last
        for breaker in breakers:
            for _ in range(50):
                breaker.record(NORMAL)
        for window in windows:
            assert window.flush()
    elapsed = time.perf_counter() - started
    after = client.info("commandstats")
    scripts = sum(after[k]["calls"] - before.get(k, {"calls": 0})["calls"] for k in after if "eval" in k)
    commands = sum(after[k]["calls"] - before.get(k, {"calls": 0})["calls"] for k in after) - scripts
    server_usec = sum(after[k]["usec"] - before.get(k, {"usec": 0})["usec"] for k in after if "eval" in k)
    flushes = rounds * len(windows)
    per_flush = server_usec / flushes
    report(
        f"fleet window, 200 processes flushing once a second: {scripts / flushes:.2f} round trip per flush "
        f"(one script of {commands / flushes:.0f} commands), {per_flush:.0f} us of Redis time each: "
        f"{per_flush * 200 / 1e4:.2f} % of one Redis core for the fleet; "
        f"{elapsed / flushes * 1e3:.2f} ms a flush here"
    )
    assert all(w.total == 200 * 50 * rounds for w in windows[-1:])  # every flush counted, once
