"""Serving past freshness on purpose: stale-while-revalidate, stale-if-error, early refresh.

Fake clocks drive every age; threads and tasks meet on events, never on sleeps.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiocache import RedisCache

from tests.logs import captured_logs
from vix_ttl import Mode, VIXCircuitBreaker, vix_cached
from vix_ttl._stale import early_refresh_due
from vix_ttl.testing import FakeClock


def wait_until(predicate: Callable[[], bool]) -> None:
    """A rendezvous with a background refresh (not a clock): spin until *predicate* holds."""
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, "the background refresh never landed"
        time.sleep(0.001)


def enter(breaker: VIXCircuitBreaker, mode: Mode) -> None:
    panics = {Mode.NORMAL: 0, Mode.HIGH_VOLATILITY: 600, Mode.CIRCUIT_OPEN: 1000}[mode]
    breaker.reset()
    for i in range(1000):
        breaker.record("panic" if i >= 1000 - panics else "normal")
    assert breaker.mode is mode


class Backend:
    """A computation the test controls: its version, whether it fails, whether it blocks."""

    def __init__(self) -> None:
        self.version = 0
        self.failing = False
        self.gate = threading.Event()
        self.gate.set()
        self.computes = 0

    def __call__(self, key: int) -> str:
        self.computes += 1
        self.gate.wait(30)
        if self.failing:
            raise ConnectionError("the odds feed is down")
        return f"v{self.version}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def breaker(clock: FakeClock) -> VIXCircuitBreaker:
    return VIXCircuitBreaker(window_seconds=3600, clock=clock)


def test_a_stale_entry_is_served_at_once_while_one_refresh_runs(
    clock: FakeClock, breaker: VIXCircuitBreaker
) -> None:
    backend = Backend()
    price = vix_cached(60, status=lambda key: "normal", breaker=breaker, stale_while_revalidate=30)(backend)
    assert price(1) == "v0"
    clock.advance(70)  # 10 s past its fresh TTL, within the 30 s allowance
    backend.version, backend.gate = 1, threading.Event()  # the refresh will block: nobody may wait on it
    assert price(1) == "v0"
    assert price(1) == "v0"  # still stale, and still one refresh
    assert price.cache_info().served_stale == 2
    wait_until(lambda: backend.computes == 2)  # the refresh, started in a thread of the pool
    backend.gate.set()
    wait_until(lambda: price(1) == "v1")  # the refresh's result replaced the entry
    assert backend.computes == 2


def test_past_the_allowance_the_call_computes(clock: FakeClock, breaker: VIXCircuitBreaker) -> None:
    backend = Backend()
    price = vix_cached(60, status=lambda key: "normal", breaker=breaker, stale_while_revalidate=30)(backend)
    price(1)
    backend.version = 1
    clock.advance(90)  # 60 fresh + 30 allowed: no longer servable
    assert price(1) == "v1"
    assert price.cache_info().stale == 1


def test_an_allowance_per_mode_widens_the_net_only_in_sustained_panic(
    clock: FakeClock, breaker: VIXCircuitBreaker
) -> None:
    backend = Backend()
    price = vix_cached(
        60, status=lambda key: "normal", breaker=breaker, stale_while_revalidate={"circuit_open": 30}
    )(backend)
    price(1)
    clock.advance(61)
    backend.version = 1
    assert price(1) == "v1"  # NORMAL mode: no allowance, computed
    enter(breaker, Mode.CIRCUIT_OPEN)
    clock.advance(61)  # CIRCUIT_OPEN floors normal at 60 s: the entry is 61 s old
    backend.gate = threading.Event()
    assert price(1) == "v1"  # served stale while the refresh waits
    assert price.cache_info().served_stale == 1
    backend.gate.set()


def test_stale_if_error_serves_the_last_value_instead_of_the_exception(
    clock: FakeClock, breaker: VIXCircuitBreaker
) -> None:
    backend = Backend()
    price = vix_cached(60, status=lambda key: "normal", breaker=breaker, stale_if_error=120)(backend)
    price(1)
    backend.failing = True
    clock.advance(61)
    with captured_logs() as logs:
        assert price(1) == "v0"
        assert price(1) == "v0"
    assert price.cache_info().served_on_error == 2
    assert [log["event"] for log in logs] == ["cache_served_on_error"]  # once per burst
    clock.advance(120)  # 181 s: past 60 + 120
    with pytest.raises(ConnectionError):
        price(1)


def test_a_backend_down_for_a_minute_in_circuit_open_reaches_no_caller(
    clock: FakeClock, breaker: VIXCircuitBreaker
) -> None:
    backend = Backend()
    price = vix_cached(5, status=lambda key: "panic", breaker=breaker, stale_if_error={"circuit_open": 120})(
        backend
    )
    enter(breaker, Mode.CIRCUIT_OPEN)  # panic is the new normal: 10 s TTLs
    for key in range(10):
        price(key)
    backend.failing = True
    exceptions = 0
    for _ in range(600):  # a call every 0.1 s for the minute the backend is down
        clock.advance(0.1)
        for key in range(10):
            try:
                price(key)
            except ConnectionError:
                exceptions += 1
    assert exceptions == 0
    assert price.cache_info().served_on_error > 0
    assert breaker.mode is Mode.CIRCUIT_OPEN
    clock.advance(71)  # the entries are now 131 s old: past 10 s fresh + 120 s allowed
    with pytest.raises(ConnectionError):
        price(0)


@pytest.mark.parametrize("left", [0.5, 1.0, 2.0])
def test_early_refresh_fires_with_the_xfetch_probability(left: float) -> None:
    delta, beta = 0.2, 2.0  # delta * beta = 0.4 s
    rng = random.Random(7)
    reads = 100_000
    fired = sum(early_refresh_due(left * delta * beta, delta, beta, rng.random()) for _ in range(reads))
    assert abs(fired / reads - math.exp(-left)) < 0.01


def test_a_hit_near_its_expiry_refreshes_early_through_the_decorator(
    clock: FakeClock, breaker: VIXCircuitBreaker
) -> None:
    computes: list[float] = []

    def compute(key: int) -> str:
        computes.append(clock())
        clock.advance(2)  # the computation takes 2 s on the entry clock: delta = 2
        return f"v{len(computes)}"

    price = vix_cached(60, status=lambda key: "normal", breaker=breaker, early_refresh=10**6)(compute)
    assert price(1) == "v1"
    clock.advance(57)  # 1 s of freshness left: a refresh all but certain (missed once in 2e6)
    assert price(1) == "v1"  # a hit: served at once
    wait_until(lambda: len(computes) == 2)
    wait_until(lambda: price(1) == "v2")  # and the refreshed entry replaced it
    assert price.cache_info().hits >= 2 and price.cache_info().misses == 1


async def test_async_stale_while_revalidate_serves_without_waiting(
    clock: FakeClock, breaker: VIXCircuitBreaker
) -> None:
    release = asyncio.Event()
    version = {"now": 0}

    @vix_cached(60, status=lambda key: "normal", breaker=breaker, stale_while_revalidate=30)
    async def price(key: int) -> str:
        if version["now"]:
            await release.wait()
        return f"v{version['now']}"

    assert await price(1) == "v0"
    clock.advance(70)
    version["now"] = 1
    assert await price(1) == "v0"  # the refresh waits on `release`; this call did not
    assert price.cache_info().served_stale == 1
    release.set()
    for _ in range(100):  # let the refresh task run: loop turns, not time
        await asyncio.sleep(0)
        if await price(1) == "v1":
            break
    assert await price(1) == "v1"


async def test_shared_stores_keep_an_entry_for_its_ttl_plus_the_allowance(redis_port: int) -> None:
    clock = FakeClock(time.time())
    breaker = VIXCircuitBreaker(window_seconds=3600, clock=clock)
    cache = RedisCache(endpoint="127.0.0.1", port=redis_port, namespace="stale-test:")
    failing = {"now": False}

    @vix_cached(
        10,
        status=lambda key: "normal",
        breaker=breaker,
        cache=cache,
        clock=clock,
        stale_if_error=50,
        namespace="sie",
    )
    async def price(key: int) -> str:
        if failing["now"]:
            raise ConnectionError("down")
        return "odds"

    await price(1)
    (key,) = await cache.raw("keys", "stale-test:*")
    assert 55_000 < await cache.raw("pttl", key) <= 60_000  # 10 s fresh + 50 s allowed
    failing["now"] = True
    clock.advance(30)
    assert await price(1) == "odds"
    assert price.cache_info().served_on_error == 1
    await cache.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"stale_while_revalidate": -1}, ValueError, "stale_while_revalidate must be a finite number"),
        ({"stale_if_error": {"panic": 5}}, ValueError, "stale_if_error: unknown mode 'panic'"),
        ({"stale_if_error": {"circuit_open": "5"}}, TypeError, r"stale_if_error\['circuit_open'\]"),
        ({"early_refresh": math.nan}, ValueError, "early_refresh"),
    ],
)
def test_bad_allowances_fail_at_decoration(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        vix_cached(60, status=lambda: "normal", **kwargs)


async def test_aiocache_cached_takes_the_same_allowances() -> None:
    from aiocache import caches

    from vix_ttl.aiocache import cached

    failing = {"now": False}

    def odds_key(f: Any, match: int) -> str:
        return f"odds-{match}"

    async def compute(match: int) -> str:
        if failing["now"]:
            raise ConnectionError("down")
        return "odds"

    # Two processes' functions over one store (one aiocache alias): the second never
    # saw the first's entry, so an older one is news to it.
    caches.add("vix-stale-test", {"cache": "aiocache.SimpleMemoryCache"})
    writer = cached(ttl=10, alias="vix-stale-test", key_builder=odds_key)(compute)
    reader = cached(ttl=10, alias="vix-stale-test", key_builder=odds_key, stale_if_error=30)(compute)
    cache = writer.cache
    assert reader.cache is cache
    assert await writer(1) == "odds"
    entry = await cache.raw("get", "odds-1")  # an in-process envelope: mark, stored_at, ttl, ...
    aged = (entry[0], entry[1] - 20, *entry[2:])  # written 20 s ago: 10 s past its fresh TTL
    await cache.set("odds-1", aged, dumps_fn=lambda value: value)
    failing["now"] = True
    assert await reader(1) == "odds"  # within 10 + 30 s: served instead of the exception
    assert reader.cache_info().served_on_error == 1


def test_stale_if_error_judges_the_entrys_age_when_it_serves_it(
    clock: FakeClock, breaker: VIXCircuitBreaker
) -> None:
    calls = {"n": 0}

    def compute(key: int) -> str:
        calls["n"] += 1
        if calls["n"] > 1:
            clock.advance(8)  # a slow failure: the entry ages while it runs
            raise ConnectionError("down")
        return "v1"

    price = vix_cached(5, status=lambda key: "normal", breaker=breaker, stale_if_error=10)(compute)
    price(1)
    clock.advance(14)  # read at 14 s: within 5 + 10
    with pytest.raises(ConnectionError):
        price(1)  # but served at 22 s it would be past them: the exception propagates


def test_early_refresh_never_divides_by_nothing() -> None:
    assert early_refresh_due(1.0, 5e-324, 0.5) is False
    assert early_refresh_due(1.0, 0.0, 1.0) is False
