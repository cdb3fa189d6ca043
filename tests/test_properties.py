"""Hypothesis: the window and the mode machine against their definitions, for any history."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from vix_ttl import Mode, Thresholds, Transition, VIXCircuitBreaker, VixStatus, vix_cached
from vix_ttl._cache.api import Outcome, fresh
from vix_ttl._cache.engine import drive
from vix_ttl._proxy import engine_of
from vix_ttl._stores.mapping import MappingStore
from vix_ttl.mode import ModeMachine
from vix_ttl.testing import FakeClock
from vix_ttl.window import RollingWindow

T = Thresholds()
ENTER = {Mode.NORMAL: T.enter_high_volatility, Mode.HIGH_VOLATILITY: T.enter_circuit_open}
EXIT = {Mode.HIGH_VOLATILITY: T.exit_high_volatility, Mode.CIRCUIT_OPEN: T.exit_circuit_open}
UP = {Mode.NORMAL: Mode.HIGH_VOLATILITY, Mode.HIGH_VOLATILITY: Mode.CIRCUIT_OPEN}

# Times on a quarter-second grid and power-of-two buckets keep float arithmetic exact.
steps = st.integers(min_value=0, max_value=200).map(lambda q: q / 4)


@given(
    bucket=st.sampled_from([0.25, 0.5, 1.0, 2.0]),
    buckets=st.integers(min_value=1, max_value=40),
    ops=st.lists(st.tuples(steps, st.booleans()), max_size=300),
)
def test_window_totals_equal_a_recount_of_the_samples_inside(
    bucket: float, buckets: int, ops: list[tuple[float, bool]]
) -> None:
    window = RollingWindow(bucket * buckets, bucket)
    samples: list[tuple[float, bool]] = []
    now = 0.0
    for step, panic in ops:
        now += step
        window.add(now, panic)
        samples.append((now, panic))
        head = math.floor(now / bucket)
        inside = [p for t, p in samples if math.floor(t / bucket) > head - buckets]
        assert (window.total, window.panics) == (len(inside), sum(inside))


@given(st.lists(st.tuples(st.floats(0, 1), st.integers(0, 50)), max_size=100), st.integers(0, 30))
def test_machine_hops_are_adjacent_justified_and_end_inside_the_band(
    history: list[tuple[float, int]], min_samples: int
) -> None:
    machine = ModeMachine(T, min_samples, 0)
    for step, (ratio, samples) in enumerate(history):
        before = machine.mode
        hops = machine.update(ratio, samples, float(step)) or []
        check_hops(before, hops, ratio, samples, min_samples)
        assert machine.mode is (hops[-1].new if hops else before)
        check_band(machine.mode, ratio, samples, min_samples)


def check_hops(before: Mode, hops: list[Transition], ratio: float, samples: int, min_samples: int) -> None:
    mode = before
    for hop in hops:
        assert hop.old is mode
        if hop.trigger == "sustained_panic":
            assert hop.new is UP[mode] and ratio >= ENTER[mode] and samples >= min_samples
        else:
            assert UP.get(hop.new) is mode and ratio < EXIT[mode]
        mode = hop.new


def check_band(mode: Mode, ratio: float, samples: int, min_samples: int) -> None:
    """No hop is due: the mode is stable for this ratio."""
    if mode in ENTER:
        assert not (ratio >= ENTER[mode] and samples >= min_samples)
    if mode in EXIT:
        assert ratio >= EXIT[mode]


class BreakerMachine(RuleBasedStateMachine):
    """Random records and clock jumps (some longer than the window) against a recount."""

    @initialize(
        bucket=st.sampled_from([0.5, 1.0, 2.0]), buckets=st.integers(1, 30), min_samples=st.integers(0, 10)
    )
    def start(self, bucket: float, buckets: int, min_samples: int) -> None:
        self.clock = FakeClock()
        self.bucket, self.buckets, self.min_samples = bucket, buckets, min_samples
        self.breaker = VIXCircuitBreaker(
            window_seconds=bucket * buckets, bucket_seconds=bucket, min_samples=min_samples, clock=self.clock
        )
        self.hops: list[Transition] = []
        self.breaker.subscribe(self.hops.append)
        self.samples: list[tuple[float, bool]] = []
        self.mode = Mode.NORMAL

    @rule(status=st.sampled_from(list(VixStatus)), count=st.integers(1, 20))
    def record(self, status: VixStatus, count: int) -> None:
        for _ in range(count):
            self.samples.append((self.clock(), status is VixStatus.PANIC))
            self.settled(self.breaker.record(status))

    @rule(step=steps)
    def advance(self, step: float) -> None:
        self.clock.advance(step)
        self.settled(self.breaker.mode)

    def inside(self) -> list[bool]:
        head = math.floor(self.clock() / self.bucket)
        return [p for t, p in self.samples if math.floor(t / self.bucket) > head - self.buckets]

    def settled(self, mode: Mode) -> None:
        inside = self.inside()
        ratio = sum(inside) / len(inside) if inside else 0.0
        check_hops(self.mode, self.hops, ratio, len(inside), self.min_samples)
        check_band(mode, ratio, len(inside), self.min_samples)
        self.hops.clear()
        self.mode = mode

    @invariant()
    def totals_match_the_recount(self) -> None:
        inside = self.inside()
        metrics = self.breaker.metrics()
        assert (metrics["samples"], metrics["panic_samples"]) == (len(inside), sum(inside))
        assert metrics["mode"] == self.mode
        assert metrics["mode_changes_total"] == sum(metrics["transitions"].values())


TestBreakerMachine = BreakerMachine.TestCase
TestBreakerMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# -- the hot paths written out for speed agree with the rules they copy --------------------

statuses = st.sampled_from(["normal", "warning", "panic", "NORMAL", VixStatus.PANIC])


@given(ops=st.lists(st.tuples(statuses, st.sampled_from([0, 1, 5, 60, None])), max_size=200))
def test_the_fused_record_and_decide_agrees_with_record_then_decide(
    ops: list[tuple[str, float | None]],
) -> None:
    clock = FakeClock()
    fused, public = (VIXCircuitBreaker(min_samples=5, window_seconds=60, clock=clock) for _ in range(2))
    for status, base in ops:
        member = VixStatus.coerce(status)
        base_ttl = 0.0 if member is VixStatus.PANIC else (math.inf if base is None else float(base))
        ttl = fused.observe(member, base_ttl)
        public.record(status)
        assert ttl == public.decide(status, base_ttl).ttl
        assert fused.mode is public.mode
        clock.advance(1)
    assert fused.metrics()["decisions"] == public.metrics()["decisions"]


@given(
    ops=st.lists(
        st.tuples(statuses, st.integers(0, 3), st.sampled_from([0.0, 0.5, 2.0, 5.0, 30.0]), st.booleans()),
        max_size=120,
    ),
    callable_ttl=st.booleans(),
)
def test_the_in_process_hit_path_follows_prepare_and_fresh(
    ops: list[tuple[str, int, float, bool]], callable_ttl: bool
) -> None:
    """The in-process hit path writes out ``Engine.prepare`` and ``MappingStore.read``: a model
    built on the public rules (record, decide, fresh) predicts every hit and every compute,
    and the store's plain ``read`` judges every entry as the hit path does."""
    clock = FakeClock()
    config = {"min_samples": 3, "window_seconds": 30, "clock": clock}
    real, model_breaker = VIXCircuitBreaker(**config), VIXCircuitBreaker(**config)  # type: ignore[arg-type]
    current = {"status": "normal"}
    computes = [0]

    def ttl_of(match: int, *, live: bool = False) -> float:
        return 10.0 + match

    @vix_cached(ttl_of if callable_ttl else 12.0, status=lambda *a, **k: current["status"], breaker=real)
    def price(match: int, *, live: bool = False) -> int:
        computes[0] += 1
        return computes[0]

    store = engine_of(price).store
    assert isinstance(store, MappingStore)
    model: dict[tuple[int, bool], tuple[int, float, float]] = {}
    for status, match, advance, live in ops:
        clock.advance(advance)
        current["status"] = status
        member = VixStatus.coerce(status)
        base = 0.0 if member is VixStatus.PANIC else (ttl_of(match) if callable_ttl else 12.0)
        model_breaker.record(status)
        ttl = model_breaker.decide(status, base).ttl
        entry = model.get((match, live))
        hit = bool(ttl) and entry is not None and fresh(clock() - entry[1], entry[2], ttl)
        if ttl:
            key = store.key((match,), {"live": True} if live else {})
            assert (drive(store.read(key, ttl, None))[0] is Outcome.HIT) is hit
        value = price(match, live=True) if live else price(match)
        if hit:
            assert entry is not None
            assert value == entry[0]  # a hit, as the rules say
        else:
            assert value == computes[0]  # computed now
            # Stored with the TTL decided; a bypass writes through, with the NORMAL base.
            written = ttl or (ttl_of(match) if callable_ttl else 12.0)
            model[(match, live)] = (value, clock(), written)
    assert real.mode is model_breaker.mode
