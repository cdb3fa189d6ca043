"""The breaker's hot path: flat in the window size, cheaper than a cache hit."""

from __future__ import annotations

import tracemalloc
from collections import deque
from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.conftest import ROUND, calls, compare, paired_ratio, report
from benchmarks.peers import cachetools_hit
from vix_ttl import VIXCircuitBreaker, VixStatus
from vix_ttl.testing import FakeClock

PANIC, NORMAL = VixStatus.PANIC, VixStatus.NORMAL


def naive_deque_sum() -> Callable[[], float]:
    # The design vix_ttl replaces: the last 1,800 samples, summed on every call.
    samples: deque[bool] = deque((i % 10 == 0 for i in range(1800)), maxlen=1800)

    def record() -> float:
        samples.append(False)
        return sum(samples) / len(samples)

    return record


def record_and_decide(window: int) -> Callable[[], None]:
    """record + decide on a window with samples in every bucket, the clock 1 ms a call.

    Every 1,000th call evicts a full bucket, as in production.
    """
    clock = FakeClock()
    breaker = VIXCircuitBreaker(window_seconds=window, clock=clock)
    for _ in range(window):
        breaker.record(NORMAL)
        clock.advance(1)
    statuses = [PANIC if i % 10 == 0 else NORMAL for i in range(1000)]
    calls = 0

    def step() -> None:
        nonlocal calls
        calls += 1
        clock.advance(0.001)
        breaker.record(statuses[calls % 1000])
        breaker.decide(NORMAL, 60)

    return step


PEERS = {
    "cachetools TTLCache hit": (cachetools_hit, 0.6),
    "naive deque+sum at 1,800 samples": (naive_deque_sum, 0.1),
}


@pytest.mark.benchmark(group="record")
@pytest.mark.parametrize("peer", list(PEERS))
def test_record_vs(benchmark: BenchmarkFixture, peer: str) -> None:
    build, target = PEERS[peer]
    breaker = VIXCircuitBreaker()
    compare(benchmark, f"record / {peer}", calls(lambda: breaker.record(NORMAL)), calls(build()), target)


@pytest.mark.benchmark(group="record")
def test_record_of_a_string_vs_a_member(benchmark: BenchmarkFixture) -> None:
    breaker = VIXCircuitBreaker()
    compare(
        benchmark,
        'record("normal") / record(VixStatus.NORMAL)',
        calls(lambda: breaker.record("normal")),
        calls(lambda: breaker.record(NORMAL)),
        1.1,
    )


@pytest.mark.benchmark(group="record")
def test_cachetools_hit(benchmark: BenchmarkFixture) -> None:
    benchmark(calls(cachetools_hit()), ROUND)


@pytest.mark.benchmark(group="window-size")
@pytest.mark.parametrize("window", [60, 1800, 86400])
def test_record_decide(benchmark: BenchmarkFixture, window: int) -> None:
    benchmark(calls(record_and_decide(window)), ROUND)


def test_record_decide_is_flat_in_the_window_size() -> None:
    small, medium, large = (calls(record_and_decide(w)) for w in (60, 1800, 86400))
    ratios = [paired_ratio(medium, small), paired_ratio(large, small), paired_ratio(large, medium)]
    spread = max(*ratios, 1 / min(ratios))
    verdict = "ok" if spread <= 1.2 else "OVER TARGET"
    report(
        f"record+decide, windows 60 s / 1800 s / 86400 s, largest pairwise ratio: {spread:.2f}x "
        f"(target <= 1.2x) {verdict}"
    )


def test_memory_of_a_breaker_after_a_million_records() -> None:
    clock = FakeClock()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    breaker = VIXCircuitBreaker(clock=clock)  # default 1800 s window, 1 s buckets
    for i in range(1_000_000):
        breaker.record(PANIC if i % 3 == 0 else NORMAL)
        clock.advance(1800 / 1_000_000 * 2)  # the million spans two windows
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    size = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    report(f"memory of one breaker after 1,000,000 records: {size / 1024:.0f} KiB (target < 200 KB)")
    assert breaker.samples == pytest.approx(500_000, rel=0.01)
    assert size < 200_000
