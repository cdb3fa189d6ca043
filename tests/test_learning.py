"""The learned change-rate policy: the estimator, the rule, the breaker's floors, the decorator."""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vix_ttl import VIXCircuitBreaker, vix_cached
from vix_ttl.learning import ChangeRate
from vix_ttl.mode import Mode
from vix_ttl.policy import BASE, Learned, TTLPolicy
from vix_ttl.status import VixStatus
from vix_ttl.testing import FakeClock

PANIC = VixStatus.PANIC


def test_the_estimator_recovers_a_known_change_rate() -> None:
    rng = random.Random(7)
    rate = ChangeRate(halflife=100_000)
    for _ in range(20_000):  # intervals of 0.5 s to 3 s, changes at one every 2 s
        interval = rng.uniform(0.5, 3.0)
        rate.observe(PANIC, interval, rng.random() < 1 - math.exp(-interval / 2))
    assert rate.interval(PANIC) == pytest.approx(2.0, rel=0.1)
    assert rate.interval(VixStatus.NORMAL) == math.inf  # nothing seen under normal


def test_every_interval_changed_still_gives_a_finite_estimate() -> None:
    rate = ChangeRate()
    for _ in range(50):
        last = rate.observe(PANIC, 10.0, True)
    # The value moved in every 10 s interval: it changes faster than every 10 s.
    assert 0 < last < 10


def test_old_observations_fade() -> None:
    rate = ChangeRate(halflife=20)
    rng = random.Random(3)
    for _ in range(400):  # a slow feed: one change every 60 s, seen at 5 s intervals
        rate.observe(PANIC, 5.0, rng.random() < 1 - math.exp(-5 / 60))
    slow = rate.interval(PANIC)
    for _ in range(200):  # then a fast one: every 1 s
        rate.observe(PANIC, 5.0, rng.random() < 1 - math.exp(-5 / 1))
    assert rate.interval(PANIC) < slow / 5


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"low": 0, "high": 5}, ValueError, "0 < low <= high"),
        ({"low": 6, "high": 5}, ValueError, "0 < low <= high"),
        ({"low": 1, "high": math.inf}, ValueError, "high must be a finite number"),
        ({"low": 1, "high": 10**400}, ValueError, "high must be a finite number, got an int of 1329 bits"),
        ({"low": 1, "high": 5, "fraction": 0}, ValueError, "fraction must be > 0"),
        ({"low": True, "high": 5}, TypeError, "low must be a finite number"),
    ],
)
def test_learned_rules_are_checked(kwargs: dict[str, float], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Learned(**kwargs)


def test_the_learned_policy_keeps_the_default_table_but_the_panic_column() -> None:
    learned, default = TTLPolicy.learned(), TTLPolicy.default()
    assert learned.learns and not default.learns
    for mode in Mode:
        assert isinstance(learned.rule(mode, PANIC), Learned)
        for status in (VixStatus.WARNING, VixStatus.NORMAL):
            assert learned.rule(mode, status) == default.rule(mode, status)
    # Until something is learned, a panic value gets the high bound: the default's floors.
    assert learned.decide("high_volatility", "panic", 0).ttl == 5
    assert learned.decide("circuit_open", "panic", 0).ttl == 10
    assert learned != default
    assert TTLPolicy.learned() == learned


@given(
    observations=st.lists(
        st.tuples(
            st.sampled_from(list(VixStatus)),
            st.floats(min_value=0, max_value=1e6, allow_nan=False),
            st.booleans(),
        ),
        max_size=60,
    ),
    mode=st.sampled_from(list(Mode)),
)
def test_a_learned_floor_stays_within_its_bounds(
    observations: list[tuple[VixStatus, float, bool]], mode: Mode
) -> None:
    clock = FakeClock()
    breaker = VIXCircuitBreaker(policy=TTLPolicy.learned(), clock=clock, min_samples=0)
    breaker.record("panic" if mode is not Mode.NORMAL else "normal")  # one sample: NORMAL or CIRCUIT_OPEN
    for status, interval, changed in observations:
        breaker.learn(status, interval, changed)
    rule = breaker.policy.rule(breaker.mode, PANIC)
    assert isinstance(rule, Learned)
    assert rule.low <= breaker.decide("panic", 0).ttl <= rule.high
    assert breaker.decide("normal", 60).ttl >= 60  # a floor never shortens the caller's TTL


def test_the_decorator_learns_how_fast_its_values_move() -> None:
    clock = FakeClock()
    breaker = VIXCircuitBreaker(policy=TTLPolicy.learned(), clock=clock, min_samples=10**9)  # stays NORMAL
    truth = random.Random(11)
    changes = [0.0]
    while changes[-1] < 2000:
        changes.append(changes[-1] + truth.expovariate(1 / 2))  # a value moving every 2 s on average

    @vix_cached(ttl=60, status=lambda key: "panic", breaker=breaker)
    def odds(key: int) -> int:
        return sum(t <= clock() for t in changes)  # how many moves so far: the value

    assert breaker.decide("panic", 0).ttl == 5  # nothing learned: the high bound
    for tick in range(20_000):  # 10 keys, one call each every 0.1 s, for 2,000 s
        clock.set(tick / 10)
        for key in range(10):
            odds(key)
    learned = breaker.learned_intervals["panic"]
    assert learned == pytest.approx(2, rel=0.35)
    assert breaker.decide("panic", 0).ttl == pytest.approx(0.6 * learned)
    info = odds.cache_info()
    assert info.bypasses == 0 and info.hits > info.stale  # cached for about 1.2 s, never bypassed


def test_values_that_cannot_be_compared_teach_nothing_and_break_nothing() -> None:
    clock = FakeClock()
    breaker = VIXCircuitBreaker(policy=TTLPolicy.learned(), clock=clock)

    class Opaque:
        def __eq__(self, other: object) -> bool:
            raise TypeError("no comparing these")

        __hash__ = object.__hash__

    @vix_cached(ttl=60, status=lambda: "panic", breaker=breaker)
    def opaque() -> Opaque:
        return Opaque()

    for tick in range(100):
        clock.set(tick)
        assert isinstance(opaque(), Opaque)
    assert breaker.learned_intervals["panic"] == math.inf
    assert VIXCircuitBreaker().learned_intervals == {}


def test_a_custom_table_can_learn_in_any_cell() -> None:
    policy = TTLPolicy(
        {
            mode: {"panic": Learned(2, 8, fraction=0.5), "warning": BASE, "normal": BASE}
            for mode in ("normal", "high_volatility", "circuit_open")
        }
    )
    breaker = VIXCircuitBreaker(policy=policy, clock=FakeClock())
    for _ in range(200):
        breaker.learn(PANIC, 4.0, True)  # moved in every 4 s interval: faster than every 4 s
    assert breaker.decide("panic", 0).ttl == 2  # half of under 4 s: held at the low bound
    for n in range(2000):
        breaker.learn(PANIC, 4.0, n % 2 == 0)  # moved in half of them: every 4 / ln 2 = 5.8 s
    assert breaker.decide("panic", 0).ttl == pytest.approx(0.5 * 4 / math.log(2), rel=0.05)
    assert "Learned(low=2, high=8, fraction=0.5)" in repr(policy)


@pytest.mark.parametrize(
    ("store", "options"),
    [
        ("memory", {}),
        ("memory", {"stale_while_revalidate": 10}),
        ("memory", {"early_refresh": 100}),
        ("aiocache", {}),
        ("aiocache", {"stale_while_revalidate": 10}),
        ("aiocache", {"stale_if_error": 10}),
    ],
)
async def test_every_recomputation_teaches_background_ones_and_shared_stores_included(
    store: str, options: dict[str, Any]
) -> None:
    from aiocache import SimpleMemoryCache

    clock = FakeClock(1_000_000.0)
    breaker = VIXCircuitBreaker(policy=TTLPolicy.learned(), clock=clock, min_samples=10**9)
    cache = SimpleMemoryCache() if store == "aiocache" else None
    moves = iter(range(10**6))

    @vix_cached(60, status=lambda: "panic", breaker=breaker, cache=cache, clock=clock, **options)
    async def odds() -> int:
        clock.advance(0.5)  # a computation takes half a second: early refresh weighs it
        return next(moves)  # a new value every time: the data moves faster than anything seen

    for _ in range(60):
        await odds()
        for _ in range(10):
            await asyncio.sleep(0)  # let a background refresh land
        clock.advance(6)
    assert breaker.learned_intervals["panic"] < 6  # every interval saw a change
    assert breaker.decide("panic", 0).ttl < 5  # below the high bound: it learned


def test_changes_over_intervals_too_short_to_measure_are_the_fastest_rate() -> None:
    rate = ChangeRate()
    rate.observe(PANIC, 0.0, True)
    rate.observe(PANIC, 0.0, False)
    assert rate.interval(PANIC) == 0.0
    rate.observe(PANIC, 5e-324, False)  # a mean that underflows to 0 when divided
    assert 0 <= rate.interval(PANIC) < 1e-300
