"""The call engine: status -> key -> decide -> lookup -> fresh -> compute -> write -> count, once.

(Its in-process hit path is proven equal to ``prepare`` and ``MappingStore.read`` by
tests/test_properties.py; every decision path on every store is tests/test_decorator_paths.py.)
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from vix_ttl import VIXCircuitBreaker
from vix_ttl.decorator import vix_cached
from vix_ttl.testing import FakeClock


def breaker() -> VIXCircuitBreaker:
    return VIXCircuitBreaker(clock=FakeClock())


def test_coalesce_off_lets_every_caller_compute() -> None:
    computes: list[int] = []
    barrier = threading.Barrier(4)

    @vix_cached(60, status=lambda x: "panic", breaker=breaker(), coalesce=False)
    def price(x: int) -> int:
        computes.append(x)
        barrier.wait(30)  # all four inside at once: none waited on another
        return x

    threads = [threading.Thread(target=price, args=(1,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert computes == [1] * 4
    assert price.cache_info().bypasses == 4


def test_many_threads_hammering_hits_and_misses_count_every_call() -> None:
    clock = FakeClock()
    statuses = ["normal", "warning", "panic"]

    @vix_cached(30, status=lambda x: statuses[x % 3], breaker=VIXCircuitBreaker(clock=clock))
    def price(x: int) -> Any:
        return x

    def worker(offset: int) -> None:
        for i in range(2000):
            assert price((i + offset) % 50) == (i + offset) % 50

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert price.cache_info().calls == 8 * 2000
    assert price.breaker.samples == 8 * 2000


async def test_callers_cancelled_while_they_waited_count_as_coalesced() -> None:
    release = asyncio.Event()

    @vix_cached(60, status=lambda x: "normal", breaker=breaker())
    async def price(x: int) -> int:
        await release.wait()
        return x

    calls = [asyncio.create_task(price(1)) for _ in range(10)]
    await asyncio.sleep(0)
    for call in calls[5:]:
        call.cancel()
    release.set()
    await asyncio.gather(*calls, return_exceptions=True)
    info = price.cache_info()
    assert (info.misses, info.coalesced, info.calls) == (1, 9, 10)  # 0.3's first cut: 6 misses


def test_an_interrupt_in_the_computation_is_still_counted() -> None:
    def compute(key: int) -> str:
        raise KeyboardInterrupt

    price = vix_cached(60, status=lambda key: "normal", breaker=breaker())(compute)
    with pytest.raises(KeyboardInterrupt):
        price(1)
    assert price.cache_info().calls == 1
