"""The learned policy: its estimators (per status, per key), the square-root rule, the wiring."""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vix_ttl import VIXCircuitBreaker, vix_cached
from vix_ttl.learning import KEYS, ChangeRate, KeyRates
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
        ({"low": 1, "high": 5, "price": 0}, ValueError, "price must be > 0"),
        ({"low": 1, "price": math.nan}, ValueError, "price must be a finite number"),
        ({"low": True, "high": 5}, TypeError, "low must be a finite number"),
        ({"low": 0}, ValueError, "0 < low <= high"),
    ],
)
def test_learned_rules_are_checked(kwargs: dict[str, float], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Learned(**kwargs)


def test_the_learned_table_learns_every_cell_within_the_default_tables_long_bounds() -> None:
    learned, default = TTLPolicy.learned(), TTLPolicy.default()
    assert learned.learns and not default.learns
    for mode in Mode:
        for status in VixStatus:
            rule, floor = learned.rule(mode, status), default.rule(mode, status)
            assert isinstance(rule, Learned)
            if isinstance(floor, float):
                assert rule.high == floor  # the long bound: the default's floor
            elif floor is BASE:
                assert rule.high is None  # the caller's TTL, never longer
    # The decision (no key) is the long bound; a panic is never bypassed.
    assert learned.decide("normal", "panic", 0).ttl == 5
    assert learned.decide("high_volatility", "panic", 0).ttl == 5
    assert learned.decide("circuit_open", "panic", 0).ttl == 10
    assert learned.decide("normal", "normal", 60).ttl == 60
    assert learned.decide("circuit_open", "normal", 120).ttl == 120  # a floor, as the default's
    assert learned != default
    assert TTLPolicy.learned() == learned


rates = st.one_of(st.floats(min_value=0, max_value=1e9, allow_nan=False), st.just(math.inf))


@given(
    requests=rates,
    changes=rates,
    low=st.floats(min_value=1e-3, max_value=100),
    longest=st.floats(min_value=0, max_value=1e4),
    price=st.floats(min_value=1e-3, max_value=1e3),
)
def test_the_square_root_rule_stays_within_its_bounds(
    requests: float, changes: float, low: float, longest: float, price: float
) -> None:
    ttl = Learned(low, price=price).ttl(requests, changes, longest)
    assert min(low, longest) <= ttl <= longest  # never longer than the decision, never below low


@given(
    requests=st.floats(min_value=0, max_value=1e6),
    more=st.floats(min_value=1, max_value=1e3),
    changes=st.floats(min_value=1e-6, max_value=1e3),
    price=st.floats(min_value=0.01, max_value=100),
)
def test_the_square_root_rule_shortens_as_a_key_is_called_or_changes_more_until_it_is_cold(
    requests: float, more: float, changes: float, price: float
) -> None:
    rule = Learned(1e-9, price=price)
    ttl = rule.ttl(requests, changes, 1e12)
    assert rule.ttl(requests * more, changes, 1e12) <= ttl  # more calls: never longer
    faster = rule.ttl(requests, changes * more, 1e12)
    if requests / (changes * more) + 1 > price:  # still called often enough per change to be worth it
        assert faster <= ttl
    else:  # a value moving faster than it is asked for: refreshing it buys nothing, the long bound
        assert faster == 1e12


def test_the_square_root_rule() -> None:
    rule = Learned(0.01, 60, price=4)
    # A hot key: TTL ~ 1/sqrt(requests x changes), sqrt(2 x price / (requests x changes)).
    assert rule.ttl(1000, 0.5, 60) == pytest.approx(math.sqrt(8 / 500), rel=0.05)
    assert rule.ttl(4000, 0.5, 60) == pytest.approx(rule.ttl(1000, 0.5, 60) / 2, rel=0.05)
    assert rule.ttl(1000, 2, 60) == pytest.approx(rule.ttl(1000, 0.5, 60) / 2, rel=0.05)
    # A cold key (fewer than price - 1 calls per change), or one nothing is known of: the long bound.
    assert rule.ttl(1, 0.5, 60) == 60
    assert rule.ttl(0, 0.5, 60) == rule.ttl(1000, 0, 60) == 60
    assert rule.ttl(1000, math.inf, 60) == 60  # a value moving faster than measured: caching costs nothing
    assert rule.ttl(math.inf, 0.5, 60) == 0.01  # calls over no measurable time: the low bound
    assert rule.ttl(1000, 0.5, 0.005) == 0.005  # a decision below low wins


def test_a_keys_request_rate_is_learned_from_gaps_after_expiry_and_calls_during_computations() -> None:
    rng, keys = random.Random(5), KeyRates(halflife=10_000)
    for _ in range(5000):  # a key called 40 times a second: the gap after each expiry, 50 ms computations
        gap, during = rng.expovariate(40), sum(1 for _ in range(200) if rng.random() < 40 * 0.05 / 200)
        requests, relative = keys.observe(7, 1 + during, gap + 0.05)
    assert requests == pytest.approx(40, rel=0.05)
    assert relative == 1.0  # no change observed against none expected
    assert keys.rates(7) == (requests, relative)
    assert keys.rates(8) == (0.0, 1.0)  # never seen: cold, moving as its status does
    assert keys.observe(9, 0, 0.05) == (0.0, 1.0)  # watched, nobody came
    assert keys.observe(10, 3, 0.0)[0] == math.inf  # calls over no measurable time


def test_a_keys_relative_change_rate_is_shrunk_toward_its_status() -> None:
    keys = KeyRates(halflife=10_000, prior=2)
    _, relative = keys.observe(1, 1, 1, changed=1, expected=0.1)
    assert 1 < relative < 3  # one surprise: (1 + 2) / (0.1 + 2), not 10
    for _ in range(2000):
        _, relative = keys.observe(1, 1, 1, changed=1, expected=0.1)
    assert relative == pytest.approx(10, rel=0.01)  # evidence enough: ten times as fast as its status
    for _ in range(2000):
        _, slow = keys.observe(2, 1, 1, changed=0, expected=0.5)
    assert slow < 0.01


@given(keys=st.lists(st.integers(min_value=0, max_value=40), max_size=300), size=st.integers(1, 16))
def test_the_key_table_is_bounded_and_keeps_what_it_just_learned(keys: list[int], size: int) -> None:
    table = KeyRates(size=size)
    for n, key in enumerate(keys):
        table.observe(key, 1, 1.0)
        assert len(table) == min(size, len(set(keys[: n + 1])))  # never more than size; full once filled
        assert table.rates(key)[0] > 0  # the key just learned about is there
    if len(set(keys)) <= size:  # never full: nothing forgotten
        assert all(table.rates(key)[0] > 0 for key in keys)
    assert KEYS == 4096 and repr(KeyRates()) == "<KeyRates 0 of 4096 keys>"


def test_a_full_key_table_forgets_keys_not_seen_since_its_hand_passed() -> None:
    table = KeyRates(size=3)
    for key in (1, 2, 3):
        table.observe(key, 1, 1.0)
    table.observe(4, 1, 1.0)  # every slot seen: the hand clears them all, then takes the first
    assert table.rates(1) == (0.0, 1.0) and len(table) == 3
    table.observe(3, 1, 1.0)  # 3 seen again: the hand skips it
    table.observe(5, 1, 1.0)
    assert table.rates(2) == (0.0, 1.0) and table.rates(3)[0] > 0
    table.observe(6, 4, 1.0)  # 3's second chance is spent: it goes before 4 and 5, seen since
    assert table.rates(3) == (0.0, 1.0) and table.rates(6) == (4.0, 1.0)


def test_a_full_table_of_keys_holds_under_a_megabyte() -> None:
    import tracemalloc

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    table = KeyRates()
    for key in range(10 * KEYS):
        table.observe(("function", key), 1, 1.0, changed=1.0, expected=0.5)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(table) == KEYS
    assert held < 1_000_000, held  # about 0.75 MB


@pytest.mark.parametrize("bad", [{"size": 0}, {"halflife": 0}, {"prior": -1}, {"prior": math.inf}])
def test_key_tables_are_checked(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        KeyRates(**bad)  # type: ignore[arg-type]


@given(
    observations=st.lists(
        st.tuples(
            st.integers(0, 5),
            st.sampled_from(list(VixStatus)),
            st.floats(min_value=0, max_value=1e4),
            st.floats(min_value=0, max_value=1e6, allow_nan=False),
            st.one_of(st.none(), st.booleans()),
        ),
        max_size=60,
    ),
    mode=st.sampled_from([Mode.NORMAL, Mode.CIRCUIT_OPEN]),
    base=st.floats(min_value=0.01, max_value=1e4),
)
def test_a_keys_learned_ttl_stays_within_its_modes_bounds(
    observations: list[tuple[int, VixStatus, float, float, bool | None]], mode: Mode, base: float
) -> None:
    breaker = VIXCircuitBreaker(policy=TTLPolicy.learned(), clock=FakeClock(), min_samples=0)
    breaker.record("panic" if mode is not Mode.NORMAL else "normal")  # one sample: NORMAL or CIRCUIT_OPEN
    assert breaker.mode is mode
    for key, status, arrivals, seconds, changed in observations:
        decided = breaker.decide(status, base if status is not PANIC else 0).ttl
        ttl = breaker.learn(
            key, status, decided, arrivals=arrivals, watched=seconds, interval=seconds, changed=changed
        )
        rule = breaker.policy.rule(mode, status)
        assert isinstance(rule, Learned)
        assert min(rule.low, decided) <= ttl <= decided  # within the mode's bounds
        if mode is Mode.NORMAL and status is not PANIC:
            assert ttl <= base  # never longer than the caller's TTL in calm
    assert breaker.decide("normal", 60).ttl >= 60  # the decision never shortens the caller's TTL


def test_a_hot_key_is_kept_shorter_than_a_cold_one_and_hits_teach_nothing() -> None:
    clock = FakeClock()
    breaker = VIXCircuitBreaker(policy=TTLPolicy.learned(), clock=clock, min_samples=10**9)  # stays NORMAL
    truth = random.Random(11)
    changes = [0.0]
    while changes[-1] < 2000:
        changes.append(changes[-1] + truth.expovariate(1 / 2))  # a value moving every 2 s on average
    cache: dict[Any, Any] = {}
    taught = []
    learn = breaker.learn

    def spy(*args: Any, **kwargs: Any) -> float:
        taught.append(args[0])
        return learn(*args, **kwargs)

    breaker.learn = spy  # type: ignore[method-assign]

    @vix_cached(ttl=60, status=lambda key: "panic", breaker=breaker, cache=cache, clock=clock)
    def odds(key: int) -> int:
        return sum(t <= clock() for t in changes)  # how many moves so far: the value

    calls = 0
    rng = random.Random(3)
    for tick in range(200_000):  # 1,000 s: key 0 called 200 times a second, keys 1-9 once in 5 s each
        clock.set(tick / 200)
        odds(0)
        calls += 1
        if rng.random() < 9 / 1000:
            odds(rng.randrange(1, 10))
            calls += 1
    assert breaker.learned_intervals["panic"] == pytest.approx(2, rel=0.35)
    assert breaker.decide("panic", 0).ttl == 5  # the decision: the long bound
    ttls = {args[0]: entry.ttl for (_, args), entry in cache.items()}  # keyed (function, args)
    hot, cold = ttls[0], [ttls[key] for key in range(1, 10)]
    assert 0.1 <= hot < 1  # about sqrt(2 x 4 / (200 x 0.5)) = 0.28 s (0.23 here)
    assert cold == [5.0] * 9  # called less than once per change: the long bound
    info = odds.cache_info()
    assert info.bypasses == 0 and len(taught) == info.misses + info.stale < calls / 10  # no hit taught


def test_values_that_cannot_be_compared_teach_no_change_and_break_nothing() -> None:
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
            mode: {"panic": Learned(2, 8, price=1), "warning": BASE, "normal": Learned(1)}
            for mode in ("normal", "high_volatility", "circuit_open")
        }
    )
    breaker = VIXCircuitBreaker(policy=policy, clock=FakeClock())
    assert breaker.decide("panic", 0).ttl == 8 and breaker.decide("normal", 30).ttl == 30
    for _ in range(200):
        breaker.learn("other", PANIC, 8, arrivals=0, watched=0.0, interval=4.0, changed=True)  # moved
    assert breaker.learned_intervals["panic"] < 4
    hot = breaker.learn("k", PANIC, 8, arrivals=1000, watched=1.0)
    assert hot == 2  # a thousand calls a second: held at the low bound
    assert breaker.learn("cold", PANIC, 8, arrivals=0, watched=10.0) == 8
    assert breaker.learn("k", VixStatus.WARNING, 30, arrivals=1000, watched=1.0) == 30  # BASE: as decided
    assert "Learned(low=2, high=8, price=1)" in repr(policy)
    with pytest.raises(TypeError, match="learns nothing"):
        VIXCircuitBreaker().learn("k", PANIC, 8, arrivals=1, watched=1.0)


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


def test_changes_over_intervals_too_short_to_measure_are_the_fastest_rate() -> None:
    rate = ChangeRate()
    rate.observe(PANIC, 0.0, True)
    rate.observe(PANIC, 0.0, False)
    assert rate.interval(PANIC) == 0.0
    rate.observe(PANIC, 5e-324, False)  # a mean that underflows to 0 when divided
    assert 0 <= rate.interval(PANIC) < 1e-300


async def test_calls_that_join_a_computation_are_calls_of_its_key() -> None:
    clock = FakeClock(1000.0)
    breaker = VIXCircuitBreaker(policy=TTLPolicy.learned(), clock=clock, min_samples=10**9)  # NORMAL
    for n in range(400):
        breaker.learn(n, PANIC, 5, arrivals=0, watched=0.0, interval=2.0, changed=n % 2 == 0)  # 2.9 s
    cache: dict[Any, Any] = {}

    @vix_cached(60, status=lambda key: "panic", breaker=breaker, cache=cache, clock=clock)
    async def odds(key: str) -> str:
        for _ in range(3):
            await asyncio.sleep(0)  # the others join meanwhile
        clock.advance(0.05)  # a 50 ms computation
        return key

    await asyncio.gather(*(odds("hot") for _ in range(100)), odds("cold"))
    assert odds.cache_info().coalesced == 99
    ttls = {args[0]: entry.ttl for (_, args), entry in cache.items()}
    # 99 calls joined in 50 ms: about 2,000 a second, kept ~0.11 s; one call alone: the long bound.
    assert 0.1 <= ttls["hot"] < 0.2
    assert ttls["cold"] == 5


def test_a_key_that_never_changes_is_kept_longer_and_longer_beside_one_that_moves() -> None:
    clock = FakeClock()
    breaker = VIXCircuitBreaker(policy=TTLPolicy.learned(), clock=clock)
    cache: dict[Any, Any] = {}
    computes = {"still": 0, "moving": 0}

    @vix_cached(ttl=60, status=lambda key: "normal", breaker=breaker, cache=cache, clock=clock)
    def page(key: str) -> int:
        computes[key] += 1
        return 0 if key == "still" else int(clock() // 30)  # a page that moves every 30 s, one never

    per_twelve_minutes: list[int] = []
    for tick in range(720_000):  # two hours, 50 calls a second to each
        page("moving" if tick % 2 else "still")
        clock.advance(0.01)
        if tick % 72_000 == 71_999:
            per_twelve_minutes.append(computes["still"] - sum(per_twelve_minutes))
    # The evidence that it is still grows with the time watched: its TTL with it.
    assert per_twelve_minutes[-1] < per_twelve_minutes[0] / 2
    assert computes["moving"] > 5 * computes["still"]
    assert {args[0]: entry.ttl for (_, args), entry in cache.items()}["still"] > 12


@pytest.mark.parametrize(
    ("bad", "error", "said"),
    [
        ({"ttl": -5.0}, ValueError, "learn ttl must be >= 0"),
        ({"ttl": math.nan}, ValueError, "learn ttl must be >= 0"),
        ({"arrivals": -1}, ValueError, "learn arrivals must be a finite number of calls >= 0"),
        ({"arrivals": math.nan}, ValueError, "learn arrivals must be a finite number"),
        ({"watched": math.inf}, ValueError, "learn watched must be a finite number of seconds >= 0"),
        ({"interval": -3.0}, ValueError, "learn interval must be a finite number of seconds >= 0"),
        ({"interval": math.nan}, ValueError, "learn interval must be a finite number"),
        ({"changed": "no"}, TypeError, "learn changed must be True, False or None"),
        ({"key": ["a list"]}, TypeError, "learn key must be hashable"),
        ({"key": ("k", ["a list inside"])}, TypeError, "learn key must be hashable"),
        ({"status": "calm"}, ValueError, "calm"),
    ],
)
def test_learn_refuses_bad_input_and_learns_nothing_from_it(
    bad: dict[str, Any], error: type[Exception], said: str
) -> None:
    breaker = VIXCircuitBreaker(policy=TTLPolicy.learned(), clock=FakeClock())
    call: dict[str, Any] = {"key": "k", "status": "normal", "ttl": 60.0, "arrivals": 1, "watched": 1.0}
    call |= {"interval": 1.0, "changed": True} | bad
    with pytest.raises(error, match=said):
        breaker.learn(call.pop("key"), call.pop("status"), call.pop("ttl"), **call)
    assert breaker.learned_intervals["normal"] == math.inf  # nothing half-learned


def test_a_ttl_that_never_expires_is_never_shortened() -> None:
    breaker = VIXCircuitBreaker(policy=TTLPolicy.learned(), clock=FakeClock())
    for n in range(100):
        breaker.learn(n, "normal", 60, arrivals=0, watched=0.0, interval=5.0, changed=True)
    assert breaker.learn("hot", "normal", None, arrivals=1000, watched=1.0) == math.inf
    assert breaker.learn("hot", "normal", 60, arrivals=1000, watched=1.0) < 60


def test_a_key_table_stays_whole_after_a_bad_observation_and_refuses_a_size_beyond_reason() -> None:
    known = KeyRates()
    known.observe("k", 10, 1.0)
    with pytest.raises(TypeError):
        known.observe("k", 5, "x")  # type: ignore[arg-type]
    for bad in ({"changed": math.nan}, {"expected": -1.0}, {"interval": -3.0}, {"interval": math.inf}):
        with pytest.raises(ValueError, match=r"KeyRates\.observe takes finite numbers >= 0"):
            known.observe("k", 5, 1.0, **bad)
    assert known.rates("k") == (10.0, 1.0)  # as before any of them
    table = KeyRates(size=2)
    table.observe(1, 1, 1.0)
    table.observe(2, 1, 1.0)
    with pytest.raises(TypeError):
        table.observe(3, "many", 1.0)  # type: ignore[arg-type]
    table.observe(4, 1, 1.0)
    table.observe(5, 1, 1.0)  # still two keys, each where the index says
    assert len(table) == 2 and table.rates(4)[0] == table.rates(5)[0] == 1.0
    with pytest.raises(ValueError, match="size must be at most 4,194,304 keys"):
        KeyRates(size=10**12)


def test_one_key_left_alone_for_a_day_does_not_teach_its_status_to_be_still() -> None:
    rate = ChangeRate()
    for n in range(50):
        rate.observe(VixStatus.NORMAL, 30.0, n % 2 == 0)  # a feed moving about every 40 s
    before = rate.interval(VixStatus.NORMAL)
    rate.observe(VixStatus.NORMAL, 86_400.0, False)  # a still key, recomputed after a day
    assert before < rate.interval(VixStatus.NORMAL) < 1.2 * before


def test_absurd_but_finite_observations_fade_like_any_other() -> None:
    breaker = VIXCircuitBreaker(policy=TTLPolicy.learned(), clock=FakeClock())
    for _ in range(2):
        breaker.learn("k", "normal", 60, arrivals=1e308, watched=1e-300, interval=1e308, changed=False)
    for n in range(3000):
        breaker.learn(n, "normal", 60, arrivals=1, watched=1.0, interval=10.0, changed=True)
    assert 1 < breaker.learned_intervals["normal"] < 10  # learned again: moving in each 10 s
    for _ in range(200):
        ttl = breaker.learn("k", "normal", 60, arrivals=1, watched=1.0, interval=10.0, changed=True)
    assert 1 < ttl < 60  # the key's own absurd calls faded too
