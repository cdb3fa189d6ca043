"""The backend failing during a stampede: what 1,000 callers pay to format their exceptions."""

from __future__ import annotations

import asyncio
import traceback

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.conftest import Runner, compare
from vix_ttl import VIXCircuitBreaker
from vix_ttl.decorator import vix_cached

CALLERS = 1000


def stampede(loop: asyncio.AbstractEventLoop, *, coalesce: bool) -> Runner:
    """A burst of n concurrent calls of a failing computation, each formatting its traceback."""

    @vix_cached(60, status=lambda match: "normal", breaker=VIXCircuitBreaker(), coalesce=coalesce)
    async def odds(match: int) -> float:
        await asyncio.sleep(0)  # every caller arrives while it runs
        raise ConnectionError("the backend is down")

    async def caller() -> int:
        try:
            await odds(1)
        except ConnectionError as error:  # what a logging handler does with each
            return len("".join(traceback.format_exception(error)))
        raise AssertionError("the backend never fails here")

    async def burst(n: int) -> None:
        await asyncio.gather(*(caller() for _ in range(n)))

    return lambda n: loop.run_until_complete(burst(n))


@pytest.mark.benchmark(group="failure")
def test_coalesced_callers_of_a_failure_format_it_as_cheaply_as_lone_ones(
    benchmark: BenchmarkFixture, loop: asyncio.AbstractEventLoop
) -> None:
    # 0.2 raised one exception object 1,000 times: its traceback grew with each raise, and
    # formatting them took 72-77 s at 1,000 callers.
    compare(
        benchmark,
        f"{CALLERS:,} coalesced callers of a failure, formatting tracebacks / {CALLERS:,} uncoalesced",
        stampede(loop, coalesce=True),
        stampede(loop, coalesce=False),
        3.0,
        blocks=5,
        n=CALLERS,
    )
