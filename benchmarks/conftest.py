"""Report benchmark results as ratios against peers measured in the same run.

pytest-benchmark times each benchmark in turn, and on a shared machine the
speed drifts between one benchmark and the next by more than the effects we
measure. So every ratio here comes from ``paired_ratio``: the two callables
run in alternating blocks, interleaved in time, and the fastest block of each
is compared, with the cost of the timing loop itself taken out. The
pytest-benchmark tables stay for the absolute figures of the run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

_lines: list[str] = []


def report(line: str) -> None:
    """Print *line* in the closing summary of the benchmark run."""
    _lines.append(line)


def _fastest_block(call: Callable[[], object], calls: int, best: float) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return min(best, (time.perf_counter() - start) / calls)


def paired_ratio(
    subject: Callable[[], object], baseline: Callable[[], object], *, blocks: int = 40, calls: int = 2000
) -> float:
    """Time per call of *subject* / time per call of *baseline*, interleaved."""

    def nothing() -> None:
        pass

    best_subject = best_baseline = best_loop = math.inf
    for _ in range(blocks):
        best_subject = _fastest_block(subject, calls, best_subject)
        best_baseline = _fastest_block(baseline, calls, best_baseline)
        best_loop = _fastest_block(nothing, calls, best_loop)
    return (best_subject - best_loop) / (best_baseline - best_loop)


def compare(
    benchmark: BenchmarkFixture,
    label: str,
    subject: Callable[[], object],
    baseline: Callable[[], object],
    target: float,
    **pairing: Any,
) -> None:
    """Benchmark *subject*, and report its paired ratio to *baseline* against *target*."""
    benchmark(subject)
    if not benchmark.disabled:
        ratio = paired_ratio(subject, baseline, **pairing)
        verdict = "ok" if ratio <= target else "OVER TARGET"
        report(f"{label}: {ratio:.2f}x (target <= {target}x) {verdict}")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _lines:
        terminalreporter.section("vix_ttl ratios (interleaved, same run)")
        for line in _lines:
            terminalreporter.write_line(line)
