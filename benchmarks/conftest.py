"""Report benchmark results as ratios against peers measured in the same run.

pytest-benchmark times each benchmark in turn, and on a shared machine the
speed drifts between one benchmark and the next by more than the effects we
measure. So every ratio here comes from ``paired_ratio``: the two operations
run in alternating blocks, interleaved in time, and the fastest block of each
is compared, less the cost of the bare loop around them. The pytest-benchmark
tables stay for the absolute figures of the run (per ``ROUND`` operations).

An operation is given as a *runner*: a callable that performs it n times
(``calls`` for a sync callable, ``awaits`` for a coroutine function).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

Runner = Callable[[int], object]
ROUND = 100  # operations per pytest-benchmark round

_lines: list[str] = []


def report(line: str) -> None:
    """Print *line* in the closing summary of the benchmark run."""
    _lines.append(line)


def calls(operation: Callable[[], object]) -> Runner:
    def run(n: int) -> None:
        for _ in range(n):
            operation()

    return run


def awaits(loop: asyncio.AbstractEventLoop, operation: Callable[[], Awaitable[object]]) -> Runner:
    async def many(n: int) -> None:
        for _ in range(n):
            await operation()

    return lambda n: loop.run_until_complete(many(n))


def _empty_loop(n: int) -> None:
    for _ in range(n):
        pass


def _fastest(run: Runner, n: int, best: float) -> float:
    start = time.perf_counter()
    run(n)
    return min(best, (time.perf_counter() - start) / n)


def paired_ratio(subject: Runner, baseline: Runner, *, blocks: int = 40, n: int = 2000) -> float:
    """Time per operation of *subject* / of *baseline*, interleaved in time."""
    best_subject = best_baseline = best_loop = math.inf
    for _ in range(blocks):
        best_subject = _fastest(subject, n, best_subject)
        best_baseline = _fastest(baseline, n, best_baseline)
        best_loop = _fastest(_empty_loop, n, best_loop)
    return (best_subject - best_loop) / (best_baseline - best_loop)


def compare(
    benchmark: BenchmarkFixture, label: str, subject: Runner, baseline: Runner, target: float, **pairing: Any
) -> float | None:
    """Benchmark *subject*; report its paired ratio to *baseline* against *target*."""
    benchmark(subject, ROUND)
    if benchmark.disabled:
        return None
    ratio = paired_ratio(subject, baseline, **pairing)
    verdict = "ok" if ratio <= target else "OVER TARGET"
    report(f"{label}: {ratio:.2f}x (target <= {target}x) {verdict}")
    return ratio


# make test measures the tests' coverage (pytest --cov) in the same run as these: a benchmark
# is never measured, in this process (pytest-cov's no_cover) nor in the processes it starts.
# Coverage's tracing made them five times slower and skewed the ratios, and they reach no
# line of vix_ttl that the tests miss.
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "no_cover: pytest-cov does not measure this test")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.no_cover)


@pytest.fixture(autouse=True)
def _processes_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    """The processes a benchmark starts are not measured either (coverage's patch = subprocess)."""
    monkeypatch.delenv("COVERAGE_PROCESS_CONFIG", raising=False)
    monkeypatch.delenv("COVERAGE_PROCESS_START", raising=False)


@pytest.fixture
def loop() -> Any:
    """An event loop for async runners, closed after the test."""
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _lines:
        terminalreporter.section("vix_ttl ratios (interleaved, same run)")
        for line in _lines:
            terminalreporter.write_line(line)
