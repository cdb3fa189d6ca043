"""The Prometheus collector: what a scrape shows equals the breaker's own snapshot."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from vix_ttl import Mode, VIXCircuitBreaker, get_breaker, vix_cached
from vix_ttl.prometheus import VixCollector, register
from vix_ttl.testing import FakeClock


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_mode_series_are_there_from_the_first_scrape() -> None:
    registry = CollectorRegistry()
    register(registry, [VIXCircuitBreaker(name="fresh", clock=FakeClock())], functions=False)
    modes = {m.value: value(registry, "vix_ttl_breaker_mode", breaker="fresh", mode=m.value) for m in Mode}
    assert modes == {"normal": 1.0, "high_volatility": 0.0, "circuit_open": 0.0}


def test_exported_values_equal_the_breakers_metrics_through_all_modes() -> None:
    clock = FakeClock()
    breaker = VIXCircuitBreaker(name="odds", window_seconds=60, min_samples=0, clock=clock)
    registry = CollectorRegistry()
    register(registry, [breaker], functions=False)
    steps = [("normal", 4), ("panic", 6), ("panic", 30), ("normal", 0)]  # NORMAL, HV, CO, then drained
    seen_modes = set()
    for status, records in steps:
        for _ in range(records):
            breaker.record(status)
            breaker.decide(status, 30)
        if records == 0:
            clock.advance(60)
        clock.advance(1)
        metrics = breaker.metrics()  # the same moment as the scrape: the fake clock stands still
        seen_modes.add(metrics["mode"])
        for mode in Mode:
            expected = 1.0 if metrics["mode"] == mode.value else 0.0
            assert value(registry, "vix_ttl_breaker_mode", breaker="odds", mode=mode.value) == expected
            assert (
                value(registry, "vix_ttl_time_in_mode_seconds_total", breaker="odds", mode=mode.value)
                == (metrics["time_in_mode_seconds"][mode.value])
            )
        assert value(registry, "vix_ttl_panic_ratio", breaker="odds") == metrics["panic_ratio"]
        assert value(registry, "vix_ttl_window_samples", breaker="odds") == metrics["samples"]
        assert (
            value(registry, "vix_ttl_adaptive_ttl_applied_total", breaker="odds")
            == (metrics["adaptive_ttl_applied"])
        )
        for hop, count in metrics["transitions"].items():
            old, new = hop.split("->")
            assert (
                value(registry, "vix_ttl_transitions_total", breaker="odds", **{"from": old, "to": new})
                == count
            )
        for status_, row in metrics["decisions_by_status"].items():
            for strategy, count in row.items():
                assert (
                    value(
                        registry, "vix_ttl_decisions_total", breaker="odds", status=status_, strategy=strategy
                    )
                    == count
                )
    assert seen_modes == {"normal", "high_volatility", "circuit_open"}


def test_cache_requests_per_function_and_result() -> None:
    @vix_cached(
        60, status=lambda x: "panic" if x < 0 else "normal", breaker=VIXCircuitBreaker(clock=FakeClock())
    )
    def price(x: int) -> int:
        return x

    price(1)
    price(1)
    price(-1)
    registry = CollectorRegistry()
    register(registry, [], functions=True)
    name = f"{__name__}.test_cache_requests_per_function_and_result.<locals>.price"
    results = {
        r: value(registry, "vix_ttl_cache_requests_total", function=name, result=r)
        for r in ("hit", "miss", "stale", "bypass", "coalesced", "error")
    }
    assert results == {"hit": 1, "miss": 1, "stale": 0, "bypass": 1, "coalesced": 0, "error": 0}


def test_default_exports_every_breaker_in_the_registry() -> None:
    get_breaker("a")
    get_breaker("b")
    text = generate_latest(_registry_with(VixCollector())).decode()
    assert 'vix_ttl_breaker_mode{breaker="a",mode="normal"} 1.0' in text
    assert 'vix_ttl_breaker_mode{breaker="b",mode="circuit_open"} 0.0' in text


def _registry_with(collector: VixCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry
