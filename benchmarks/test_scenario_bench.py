"""The default lineup-leak scenario: how much of the naive load reaches the backend.

A regression in protection shows up here as a ratio over its target; the
run also fails on any value served past its decided TTL.
"""

from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.conftest import report
from vix_ttl.sim.scenario import lineup_leak
from vix_ttl.sim.simulate import StrategyResult, run, share

TARGETS = {"breaker": 0.40, "breaker+coalesce": 0.05}


@pytest.mark.benchmark(group="scenario")
def test_lineup_leak_backend_load(benchmark: BenchmarkFixture) -> None:
    results: dict[str, StrategyResult] = benchmark.pedantic(  # type: ignore[no-untyped-call]
        run, args=(lineup_leak(), ("bypass", "breaker", "breaker+coalesce")), rounds=1, iterations=1
    )
    bypass = results["bypass"]
    for strategy, target in TARGETS.items():
        ratio = share(results[strategy].computes_in_panic, bypass.computes_in_panic)
        verdict = "ok" if ratio <= target else "OVER TARGET"
        report(
            f"lineup-leak backend computes in panic, {strategy} / bypass: {ratio:.3f} "
            f"(target <= {target}) {verdict}"
        )
        assert ratio <= target
    peak = {s: r.peak_computes_per_second for s, r in results.items()}
    report(f"lineup-leak peak backend computes/s: {peak}")
    assert sum(r.staleness_violations for r in results.values()) == 0
