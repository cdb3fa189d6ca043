"""Prometheus metrics for vix_ttl (the ``prometheus`` extra): read at scrape time.

``register()`` adds a collector to a prometheus_client registry. At each scrape
it reads ``metrics()`` of every breaker (default: all in the ``get_breaker``
registry) and ``cache_info()`` of every ``@vix_cached`` function: nothing is
added to the hot path. Every breaker shows all three mode series from the
first scrape, 1 for its mode and 0 for the others.

This module imports prometheus_client: it is the edge of vix_ttl, never its core.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from vix_ttl._checks import missing_extra

try:
    from prometheus_client.core import (
        REGISTRY,
        CollectorRegistry,
        CounterMetricFamily,
        GaugeMetricFamily,
        Metric,
    )
except ImportError as exc:
    raise missing_extra(__name__, "prometheus", exc) from exc

from vix_ttl.breaker import VIXCircuitBreaker
from vix_ttl.decorator import cached_functions
from vix_ttl.mode import Mode
from vix_ttl.registry import known_breakers

__all__ = ["VixCollector", "register"]


class VixCollector:
    """A prometheus_client collector for breakers and ``@vix_cached`` functions.

    Args:
        breakers: The breakers to export; None exports every breaker in the
            ``get_breaker`` registry at each scrape.
        functions: Export ``vix_ttl_cache_requests_total`` for every live
            ``@vix_cached`` function.
    """

    def __init__(
        self, breakers: Iterable[VIXCircuitBreaker] | None = None, *, functions: bool = True
    ) -> None:
        self._breakers = None if breakers is None else list(breakers)
        self._functions = functions

    def collect(self) -> Iterator[Metric]:
        breakers = self._breakers if self._breakers is not None else list(known_breakers().values())
        mode = GaugeMetricFamily(
            "vix_ttl_breaker_mode",
            "1 for the breaker's current mode, 0 for the others",
            labels=["breaker", "mode"],
        )
        ratio = GaugeMetricFamily(
            "vix_ttl_panic_ratio", "Panic samples / all samples in the window", labels=["breaker"]
        )
        samples = GaugeMetricFamily("vix_ttl_window_samples", "Samples in the window", labels=["breaker"])
        transitions = CounterMetricFamily(
            "vix_ttl_transitions", "Mode transitions, per hop", labels=["breaker", "from", "to"]
        )
        decisions = CounterMetricFamily(
            "vix_ttl_decisions",
            "TTL decisions per status and strategy",
            labels=["breaker", "status", "strategy"],
        )
        adaptive = CounterMetricFamily(
            "vix_ttl_adaptive_ttl_applied", "Decisions that raised the caller's TTL", labels=["breaker"]
        )
        time_in_mode = CounterMetricFamily(
            "vix_ttl_time_in_mode_seconds", "Time spent in each mode", labels=["breaker", "mode"]
        )
        for breaker in breakers:
            metrics = breaker.metrics()
            name = metrics["breaker"]
            for each in Mode:
                mode.add_metric([name, each.value], 1.0 if metrics["mode"] == each.value else 0.0)
                time_in_mode.add_metric([name, each.value], metrics["time_in_mode_seconds"][each.value])
            ratio.add_metric([name], metrics["panic_ratio"])
            samples.add_metric([name], metrics["samples"])
            for hop, count in metrics["transitions"].items():
                old, new = hop.split("->")
                transitions.add_metric([name, old, new], count)
            for status, row in metrics["decisions_by_status"].items():
                for strategy, count in row.items():
                    decisions.add_metric([name, status, strategy], count)
            adaptive.add_metric([name], metrics["adaptive_ttl_applied"])
        yield from (mode, ratio, samples, transitions, decisions, adaptive, time_in_mode)
        if self._functions:
            requests = CounterMetricFamily(
                "vix_ttl_cache_requests",
                "Calls of @vix_cached functions, per result",
                labels=["function", "result"],
            )
            for function, cache_info in sorted(cached_functions().items()):
                for result, count in cache_info().counts.items():
                    requests.add_metric([function, _RESULTS[result]], count)
            yield requests


# cache_info() field -> the `result` label (singular, as Prometheus label values go).
_RESULTS = {
    "hits": "hit",
    "misses": "miss",
    "stale": "stale",
    "bypasses": "bypass",
    "coalesced": "coalesced",
    "errors": "error",
    "rejected": "rejected",
    "served_stale": "served_stale",
    "served_on_error": "served_on_error",
}


def register(
    registry: CollectorRegistry = REGISTRY,
    breakers: Iterable[VIXCircuitBreaker] | None = None,
    *,
    functions: bool = True,
) -> VixCollector:
    """Add a ``VixCollector`` to *registry* (default: prometheus_client's global one)."""
    collector = VixCollector(breakers, functions=functions)
    registry.register(collector)
    return collector
