"""The call engine: status -> key -> decide -> lookup -> fresh -> compute -> write -> count, once.

(Its in-process hit path is proven equal to ``prepare`` and ``MappingStore.read`` by
tests/test_properties.py; every decision path on every store is tests/test_decorator_paths.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from typing import Any

import pytest
from aiocache import SimpleMemoryCache
from hypothesis import given
from hypothesis import strategies as st

from tests.logs import captured_logs
from vix_ttl import VIXCircuitBreaker
from vix_ttl._cache.api import OUTCOMES, Outcome
from vix_ttl._cache.engine import cached_functions, drive
from vix_ttl._proxy import engine_of
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


# -- the engine's own pieces ----------------------------------------------------------------------


def test_drive_runs_a_coroutine_that_never_suspends_to_its_end() -> None:
    async def plain() -> str:
        return "value"

    assert drive(plain()) == "value"


def test_drive_refuses_a_coroutine_that_suspends_and_closes_it() -> None:
    closed: list[bool] = []

    async def suspends() -> None:
        try:
            await asyncio.sleep(0)
        finally:
            closed.append(True)

    with pytest.raises(RuntimeError, match="a synchronous call suspended") as raised:
        drive(suspends())
    # Closed at once, not when the collector gets to it (its traceback still holds drive's frame).
    assert closed == [True] and raised.value.__traceback__ is not None


def test_cached_functions_are_every_live_decorated_function_by_name() -> None:
    @vix_cached(60, status=lambda x: "normal", breaker=breaker())
    def listed(x: int) -> int:
        return x

    listed(1)
    name = f"{__name__}.{listed.__qualname__}"
    assert cached_functions()[name]() == listed.cache_info()
    del listed
    gc.collect()
    assert name not in cached_functions()  # an exporter never keeps a function alive


async def test_outcomes_receives_every_call_counted_in_its_context() -> None:
    clock = FakeClock()

    @vix_cached(60, status=lambda x: "panic" if x < 0 else "normal", breaker=VIXCircuitBreaker(clock=clock))
    async def in_process(x: int) -> int:
        return x

    @vix_cached(
        60, status=lambda x: "normal", cache=SimpleMemoryCache(), breaker=VIXCircuitBreaker(clock=clock)
    )
    async def shared(x: int) -> int:
        return x

    seen: list[Outcome] = []
    token = OUTCOMES.set(seen)
    try:
        for call in (in_process(1), in_process(1), in_process(-1), shared(1), shared(1)):
            await call
    finally:
        OUTCOMES.reset(token)
    # An in-process hit counts nothing else (the hit path stays one frame); a shared store's does.
    assert seen == [Outcome.MISS, Outcome.BYPASS, Outcome.MISS, Outcome.HIT]
    await in_process(2)
    assert len(seen) == 4  # outside the context: nothing more


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["normal", "warning", "panic"]), st.integers(0, 3), st.booleans(), st.booleans()
        ),
        max_size=60,
    )
)
def test_every_call_counts_under_exactly_one_outcome(calls: list[tuple[str, int, bool, bool]]) -> None:
    clock = FakeClock()
    state: dict[str, Any] = {"status": "normal", "fail": False}

    @vix_cached(
        5,
        status=lambda x: state["status"],
        breaker=VIXCircuitBreaker(min_samples=3, window_seconds=30, clock=clock),
        stale_while_revalidate=2,
        stale_if_error=4,
    )
    def price(x: int) -> int:
        if state["fail"]:
            raise ConnectionError("down")
        return x

    made = 0
    for status, advance, fail, other_key in calls:
        state.update(status=status, fail=fail)
        clock.advance(advance)
        with contextlib.suppress(ConnectionError):
            price(2 if other_key else 1)
        made += 1
    drain(price)
    info = price.cache_info()
    assert info.calls == made and all(count >= 0 for count in info.counts.values())


def drain(function: Any) -> None:
    """Wait until *function*'s background refreshes have ended (a rendezvous, not a clock)."""
    refreshes = engine_of(function).refreshes
    deadline = time.monotonic() + 30
    while refreshes.running():
        assert time.monotonic() < deadline, "a refresh never ended"
        time.sleep(0.001)


def test_a_value_the_integration_says_not_to_serve_stale_is_recomputed() -> None:
    clock = FakeClock()
    computes: list[str] = []
    decorate = vix_cached(
        5, status=lambda key: "normal", breaker=VIXCircuitBreaker(clock=clock), stale_while_revalidate=60
    )

    def page(key: str) -> str:
        computes.append(key)
        return key

    cached = decorate.replace(stale_ok=lambda value: value != "must-revalidate")(page)
    for key in ("public", "must-revalidate"):
        cached(key)
        clock.advance(10)  # past its fresh TTL, within the allowance
        assert cached(key) == key
    drain(cached)
    assert computes.count("must-revalidate") == 2  # recomputed on the caller's path
    assert cached.cache_info().served_stale == 1  # the other one was served stale


def test_the_value_can_set_its_own_ttl_and_zero_keeps_nothing() -> None:
    clock = FakeClock()
    computes: list[int] = []
    decorate = vix_cached(60, status=lambda x: "normal", breaker=VIXCircuitBreaker(clock=clock))

    def price(x: int) -> int | None:
        computes.append(x)
        return None if x == 0 else x

    cached = decorate.replace(entry_ttl=lambda value, ttl: 0.0 if value is None else min(ttl, 10.0))(price)
    cached(0), cached(0), cached(1), cached(1)
    assert computes == [0, 0, 1]  # None was not kept
    clock.advance(10)
    cached(1)
    assert computes == [0, 0, 1, 1]  # kept for the 10 s its value allowed, not the 60 decided


def test_without_records_a_call_is_judged_but_its_status_not_recorded() -> None:
    breaker_ = VIXCircuitBreaker(clock=FakeClock(), min_samples=0)
    cached = vix_cached(60, status=lambda x: "panic", breaker=breaker_).replace(records=False)(lambda x: x)
    for _ in range(10):
        cached(1)
    assert breaker_.samples == 0  # recorded elsewhere (when an entry is stored, by the ASGI middleware)
    assert cached.cache_info().bypasses == 10  # still judged: PANIC in NORMAL mode bypasses


def test_a_failed_write_is_an_error_but_a_bypass_stays_a_bypass() -> None:
    class Refusing(dict[Any, Any]):
        def __setitem__(self, key: Any, value: Any) -> None:
            raise ConnectionError("write lost")

    status = {"now": "normal"}
    cached = vix_cached(
        60, status=lambda x: status["now"], cache=Refusing(), breaker=breaker(), namespace="refusing"
    )(lambda x: x)
    with captured_logs():
        assert cached(1) == 1
        status["now"] = "panic"
        assert cached(1) == 1
    info = cached.cache_info()
    assert (info.errors, info.bypasses, info.misses) == (1, 1, 0)


def test_a_plain_functions_stop_iteration_reaches_its_caller_as_it_was() -> None:
    @vix_cached(60, status=lambda x: "normal", breaker=VIXCircuitBreaker())
    def first(x: int) -> int:
        return next(iter([]))

    with pytest.raises(StopIteration):
        first(1)


def test_an_object_with_an_async_call_is_a_coroutine_function() -> None:
    class Quote:
        async def __call__(self, match: int) -> int:
            return match * 2

    quote = vix_cached(60, status=lambda m: "normal", breaker=VIXCircuitBreaker())(Quote())
    assert asyncio.run(quote(2)) == 4
    assert asyncio.run(quote(2)) == 4  # a hit: the value, not an awaited coroutine


def test_a_plain_function_returning_a_coroutine_is_said_plainly() -> None:
    async def quote(match: int) -> int:
        return match

    def hiding(match: int) -> Any:  # a decorator that hides the coroutine function
        return quote(match)

    cached = vix_cached(60, status=lambda m: "normal", breaker=VIXCircuitBreaker())(hiding)
    with pytest.raises(TypeError, match=r"returned a coroutine.*markcoroutinefunction"):
        cached(1)
