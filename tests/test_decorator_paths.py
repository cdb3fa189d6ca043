"""Every decision path of @vix_cached, on every store: in-process and real servers."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator

import pytest

from tests.harness import STORES, Harness, store_params
from vix_ttl import Mode

HV, CO = Mode.HIGH_VOLATILITY, Mode.CIRCUIT_OPEN


@pytest.fixture(params=store_params(STORES))
async def h(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    ports = {}
    if request.param == "redis":
        ports["redis_port"] = request.getfixturevalue("redis_port")
    if request.param == "memcached":
        ports["memcached_port"] = request.getfixturevalue("memcached_port")
    harness = Harness(request.param, **ports)
    await harness.start()
    yield harness
    await harness.close()


async def test_calm_entries_are_served_for_the_base_ttl(h: Harness) -> None:
    price = h.make(ttl=60)
    first = await price(1)
    h.clock.advance(59.9)
    assert await price(1) == first
    h.clock.advance(0.1)
    assert await price(1) != first
    assert h.computes == [1, 1]
    assert {k: v for k, v in h.info().counts.items() if v} == {"hits": 1, "misses": 1, "stale": 1}


async def test_after_a_short_panic_the_value_from_before_it_never_comes_back(h: Harness) -> None:
    # The odds service's story: calm 1.5, panic moves it to 3.0 then 3.4, calm again.
    # A bypass serves no stored entry, and its value replaces the entry: 3.4, not 1.5.
    price = h.make(ttl=60)
    calm = await price(1)  # t=0, calm: stored for 60 s
    h.status = "panic"
    h.clock.advance(5)
    first_move = await price(1)  # t=5: bypassed, never served from the store
    h.clock.advance(5)
    last_move = await price(1)  # t=10: bypassed
    h.status = "normal"
    h.clock.advance(5)
    assert await price(1) == last_move  # t=15: what clients were last shown (0.2 served calm)
    assert len({calm, first_move, last_move}) == 3
    assert h.computes == [1, 1, 1]
    assert {k: v for k, v in h.info().counts.items() if v} == {"misses": 1, "bypasses": 2, "hits": 1}


async def test_a_bypassed_value_is_written_for_the_base_ttl_and_judged_by_the_read_rule(h: Harness) -> None:
    price = h.make(ttl=60)
    h.status = "panic"
    assert await price(2) == "price-2-1"
    assert await price(2) == "price-2-2"  # still a bypass: nothing served from the store
    h.status = "normal"
    h.clock.advance(59.9)
    assert await price(2) == "price-2-2"  # the last bypass's value, within the base TTL
    h.clock.advance(0.1)
    assert await price(2) == "price-2-3"  # its 60 s are over: computed


async def test_a_calm_entry_is_not_served_in_panic_once_volatility_is_high(h: Harness) -> None:
    price = h.make(ttl=300)
    calm = await price(7)
    h.enter(HV)
    h.clock.advance(6)
    h.status = "panic"
    assert await price(7) != calm  # 6 s old > the 5 s decided for panic now
    assert h.info().stale == 1


async def test_high_volatility_panic_serves_for_five_seconds(h: Harness) -> None:
    price = h.make(ttl=300)
    h.enter(HV)
    h.status = "panic"
    first = await price(3)
    h.clock.advance(4.9)
    assert await price(3) == first
    h.clock.advance(0.1)
    assert await price(3) != first
    assert h.computes == [3, 3]


async def test_a_panic_entry_is_not_stretched_when_calm_returns(h: Harness) -> None:
    price = h.make(ttl=300)
    h.enter(HV)
    h.status = "panic"
    first = await price(3)
    h.enter(Mode.NORMAL)
    h.status = "normal"
    h.clock.advance(5)
    assert await price(3) != first  # stored for 5 s: min(5, 300)
    assert h.info().stale == 1


async def test_circuit_open_floors_the_ttls(h: Harness) -> None:
    price = h.make(ttl=30, warning_ttl=5)
    h.enter(CO)
    normal = await price(1)  # floor 60 over base 30
    h.status = "warning"
    warning = await price(2)  # floor 30 over base 5
    h.status = "panic"
    panic = await price(3)  # floor 10 over base 0
    h.clock.advance(9.9)
    assert await price(3) == panic
    h.clock.advance(0.1)
    assert await price(3) != panic
    h.status = "warning"
    h.clock.advance(19.9)
    assert await price(2) == warning
    h.clock.advance(0.1)
    assert await price(2) != warning
    h.status = "normal"
    h.clock.advance(29.9)
    assert await price(1) == normal
    h.clock.advance(0.1)
    assert await price(1) != normal


async def test_warning_ttl(h: Harness) -> None:
    price = h.make(ttl=60, warning_ttl=20)
    h.status = "warning"
    first = await price(1)
    h.clock.advance(19.9)
    assert await price(1) == first
    h.clock.advance(0.1)
    assert await price(1) != first


async def test_callable_ttl(h: Harness) -> None:
    price = h.make(ttl=lambda x: x * 10)
    first = await price(2)
    h.clock.advance(19.9)
    assert await price(2) == first
    h.clock.advance(0.1)
    assert await price(2) != first


async def test_none_is_cached_like_any_value(h: Harness) -> None:
    price = h.make(ttl=60)
    assert await price(None) is None
    assert await price(None) is None
    assert h.computes == [None]
    assert h.info().hits == 1


async def test_exceptions_are_not_cached(h: Harness) -> None:
    price = h.make(ttl=60)
    h.fail_next = RuntimeError("backend down")
    with pytest.raises(RuntimeError, match="backend down"):
        await price(1)
    value = await price(1)
    assert await price(1) == value
    assert h.computes == [1]
    assert h.info().calls == 3  # the call that raised counts too (as a miss)


async def test_invalidate_and_clear_follow_the_kind_of_the_function(h: Harness) -> None:
    """Plain calls for a plain function, coroutines for a coroutine function, whatever the store:
    switching ``cache=`` never leaves a coroutine nobody awaits."""
    price = h.make(ttl=60)
    first = await price(1)
    await price(2)
    result = h.function.invalidate(1)
    is_async = not h.store.endswith("-sync")
    assert inspect.iscoroutine(result) is is_async
    removed = await result if is_async else result
    assert removed is True
    assert await price(1) != first
    if h.store == "memcached":
        with pytest.raises(NotImplementedError, match="memcached cannot delete entries by prefix"):
            await h.function.cache_clear()
        return
    cleared = h.function.cache_clear()
    assert inspect.iscoroutine(cleared) is is_async
    if is_async:
        await cleared
    assert h.info().calls == 0
    await price(2)
    assert h.info().misses == 1
