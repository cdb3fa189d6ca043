"""The breaker as users drive it: statuses in, modes, decisions, events and metrics out."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.logs import captured_logs
from vix_ttl import (
    BASE,
    BYPASS,
    Mode,
    Strategy,
    Thresholds,
    Transition,
    TTLPolicy,
    VIXCircuitBreaker,
    VixStatus,
)
from vix_ttl.testing import FakeClock

N, HV, CO = Mode.NORMAL, Mode.HIGH_VOLATILITY, Mode.CIRCUIT_OPEN


def feed(breaker: VIXCircuitBreaker, panics: int, normals: int) -> Mode:
    mode = breaker.mode
    for _ in range(normals):
        mode = breaker.record("normal")
    for _ in range(panics):
        mode = breaker.record(VixStatus.PANIC)
    return mode


def test_fresh_breaker_ignores_an_isolated_panic(vix_breaker: VIXCircuitBreaker) -> None:
    assert vix_breaker.record("panic") is N
    assert vix_breaker.panic_ratio == 1.0
    assert vix_breaker.samples == 1


def test_min_samples_holds_the_mode_until_the_window_has_enough(vix_clock: FakeClock) -> None:
    breaker = VIXCircuitBreaker(min_samples=20, clock=vix_clock)
    for _ in range(19):
        assert breaker.record("panic") is N
    assert breaker.record("panic") is CO  # 20th sample: 100 % panic, one settle


def test_record_panic_status_is_record(vix_breaker: VIXCircuitBreaker) -> None:
    with pytest.warns(DeprecationWarning, match="record_panic_status is deprecated.*use record"):
        assert vix_breaker.record_panic_status("warning") is N
    assert vix_breaker.samples == 1


def test_rising_panic_publishes_each_hop_once_logged_at_the_level_of_the_mode_entered(
    vix_clock: FakeClock,
) -> None:
    breaker = VIXCircuitBreaker(min_samples=0, clock=vix_clock)
    events: list[Transition] = []
    breaker.subscribe(events.append)
    feed(breaker, panics=2, normals=8)  # 20 %
    assert breaker.mode is N
    # 20 % -> 90 % one sample at a time: 70 more panics => 72/80 = 90 %.
    with captured_logs() as logs:
        feed(breaker, panics=70, normals=0)
    assert [(e.old, e.new, e.trigger) for e in events] == [
        (N, HV, "sustained_panic"),
        (HV, CO, "sustained_panic"),
    ]
    assert events[0].panic_ratio >= 0.5 and events[1].panic_ratio >= 0.8
    assert [(log["log_level"], log["new_mode"]) for log in logs] == [
        ("warning", "high_volatility"),
        ("critical", "circuit_open"),
    ]


def test_a_single_evaluation_settles_across_two_modes(vix_clock: FakeClock) -> None:
    # 9 panics recorded while min_samples holds the mode, then the 10th: 100 % at once.
    breaker = VIXCircuitBreaker(min_samples=10, clock=vix_clock)
    events: list[Transition] = []
    breaker.subscribe(events.append)
    feed(breaker, panics=10, normals=0)
    assert [(e.old, e.new) for e in events] == [(N, HV), (HV, CO)]
    assert events[0].at == events[1].at


def test_collapse_back_down_when_the_window_drains(vix_clock: FakeClock) -> None:
    breaker = VIXCircuitBreaker(window_seconds=60, min_samples=5, clock=vix_clock)
    events: list[Transition] = []
    breaker.subscribe(events.append)
    feed(breaker, panics=10, normals=0)
    assert breaker.mode is CO
    vix_clock.advance(59.9)
    assert breaker.mode is CO
    vix_clock.advance(0.1)  # the panic bucket leaves the window: empty counts as ratio 0
    with captured_logs() as logs:
        assert breaker.mode is N
    assert [(e.old, e.new, e.trigger) for e in events[-2:]] == [(CO, HV, "recovery"), (HV, N, "recovery")]
    assert logs == [
        {
            "event": "breaker_mode_changed",
            "log_level": "warning",
            "breaker": "default",
            "old_mode": "circuit_open",
            "new_mode": "high_volatility",
            "panic_ratio_pct": 0.0,
            "trigger": "recovery",
        },
        {
            "event": "breaker_mode_changed",
            "log_level": "info",
            "breaker": "default",
            "old_mode": "high_volatility",
            "new_mode": "normal",
            "panic_ratio_pct": 0.0,
            "trigger": "recovery",
        },
    ]
    assert breaker.samples == 0 and breaker.panic_ratio == 0.0


def test_decide_reads_the_window_as_of_now_without_recording(vix_clock: FakeClock) -> None:
    breaker = VIXCircuitBreaker(window_seconds=60, min_samples=0, clock=vix_clock)
    feed(breaker, panics=3, normals=1)  # 75 %: HIGH_VOLATILITY
    decision = breaker.decide("panic", 0)
    assert (decision.ttl, decision.strategy, decision.mode) == (5, "adaptive", HV)
    assert breaker.samples == 4
    vix_clock.advance(60)
    assert breaker.decide("panic", 0).strategy == "bypass"  # drained: NORMAL again
    with pytest.warns(DeprecationWarning, match="get_adaptive_ttl is deprecated.*use decide"):
        assert breaker.get_adaptive_ttl("warning", 30) == (30, "base")


def test_stabilization_seconds_delays_the_step_down(vix_clock: FakeClock) -> None:
    breaker = VIXCircuitBreaker(window_seconds=60, min_samples=0, stabilization_seconds=30, clock=vix_clock)
    feed(breaker, panics=1, normals=0)
    assert breaker.mode is CO
    vix_clock.advance(60)  # drained: the step-down condition starts holding now
    assert breaker.mode is CO
    vix_clock.advance(29)
    assert breaker.mode is CO
    vix_clock.advance(1)
    assert breaker.mode is N


def test_listener_that_raises_is_logged_counted_and_harmless(vix_clock: FakeClock) -> None:
    breaker = VIXCircuitBreaker(min_samples=0, clock=vix_clock)
    seen: list[Mode] = []

    def broken(_: Transition) -> None:
        raise RuntimeError("listener bug")

    breaker.subscribe(broken)
    breaker.subscribe(lambda t: seen.append(t.new))
    with captured_logs() as logs:
        assert breaker.record("panic") is CO
    assert seen == [HV, CO]  # the listener after the broken one still runs
    failures = [log for log in logs if log["event"] == "breaker_listener_failed"]
    assert len(failures) == 2 and failures[0]["log_level"] == "error"
    assert breaker.metrics()["listener_errors"] == 2


def test_unsubscribe(vix_clock: FakeClock) -> None:
    breaker = VIXCircuitBreaker(min_samples=0, clock=vix_clock)
    seen: list[Transition] = []
    unsubscribe = breaker.subscribe(seen.append)
    unsubscribe()
    unsubscribe()  # twice is harmless
    breaker.record("panic")
    assert seen == []


def test_listeners_run_outside_the_lock(vix_clock: FakeClock) -> None:
    breaker = VIXCircuitBreaker(min_samples=0, clock=vix_clock)
    reads: list[Mode] = []
    breaker.subscribe(lambda t: reads.append(breaker.mode))  # would deadlock under the lock
    breaker.record("panic")
    assert reads == [CO, CO]


def test_metrics_snapshot(vix_clock: FakeClock) -> None:
    breaker = VIXCircuitBreaker(name="odds", window_seconds=100, min_samples=0, clock=vix_clock)
    vix_clock.advance(10)
    breaker.record("normal")
    breaker.decide("normal", 60)
    breaker.record("panic")  # 50 %: HIGH_VOLATILITY at t=10
    breaker.decide("panic", 0)  # adaptive 5 s
    vix_clock.advance(5)
    with pytest.warns(DeprecationWarning, match="get_metrics is deprecated.*use metrics"):
        assert breaker.get_metrics() == breaker.metrics()
    metrics = breaker.metrics()
    assert metrics == breaker.metrics()
    assert metrics["breaker"] == "odds"
    assert metrics["mode"] == "high_volatility"
    assert (metrics["panic_ratio"], metrics["panic_ratio_pct"], metrics["samples"]) == (0.5, 50.0, 2)
    assert metrics["window_seconds"] == 100
    assert metrics["mode_changes_total"] == 1
    assert metrics["transitions"] == {
        "normal->high_volatility": 1,
        "high_volatility->circuit_open": 0,
        "high_volatility->normal": 0,
        "circuit_open->high_volatility": 0,
    }
    assert metrics["time_in_mode_seconds"] == {"normal": 10.0, "high_volatility": 5.0, "circuit_open": 0.0}
    assert metrics["decisions"] == {"bypass": 0, "adaptive": 1, "base": 1}
    assert metrics["decisions_by_status"] == {
        "normal": {"bypass": 0, "adaptive": 0, "base": 1},
        "warning": {"bypass": 0, "adaptive": 0, "base": 0},
        "panic": {"bypass": 0, "adaptive": 1, "base": 0},
    }
    assert metrics["adaptive_ttl_applied"] == 1


def test_reset_gives_a_fresh_normal_breaker(vix_clock: FakeClock) -> None:
    breaker = VIXCircuitBreaker(min_samples=0, clock=vix_clock)
    seen: list[Transition] = []
    breaker.subscribe(seen.append)
    breaker.record("panic")
    breaker.reset()
    metrics = breaker.metrics()
    assert (breaker.mode, metrics["samples"], metrics["mode_changes_total"]) == (N, 0, 0)
    assert metrics["decisions"] == {"bypass": 0, "adaptive": 0, "base": 0}
    breaker.record("panic")
    assert len(seen) == 4  # listeners stay subscribed


def test_custom_thresholds_and_policy(vix_clock: FakeClock) -> None:
    policy = TTLPolicy({m: {s: 1 for s in VixStatus} for m in Mode})
    breaker = VIXCircuitBreaker(
        min_samples=0,
        clock=vix_clock,
        policy=policy,
        thresholds=Thresholds(enter_high_volatility=0.2, exit_high_volatility=0.1),
    )
    feed(breaker, panics=1, normals=3)  # 25 %
    assert breaker.mode is HV
    assert breaker.decide("panic", 0).ttl == 1  # no bypass in this policy


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"window_seconds": 0}, ValueError, "window_seconds"),
        ({"window_seconds": -60}, ValueError, "window_seconds"),
        ({"bucket_seconds": 0}, ValueError, "bucket_seconds"),
        ({"bucket_seconds": 3600}, ValueError, "bucket_seconds .* must not exceed window_seconds"),
        ({"bucket_seconds": 7}, ValueError, "whole multiple"),
        ({"min_samples": -1}, ValueError, "min_samples must be an int >= 0, got -1"),
        ({"min_samples": 2.5}, TypeError, "min_samples must be an int"),
        ({"stabilization_seconds": -1}, ValueError, "stabilization_seconds"),
        ({"clock": 123.0}, TypeError, "clock must be a zero-argument callable"),
        ({"clock": lambda: "now"}, TypeError, "clock must return a number of seconds.*'now'"),
        ({"clock": lambda: math.nan}, ValueError, "clock must return a finite number"),
        ({"clock": lambda: math.inf}, ValueError, "clock must return a finite number"),
        ({"clock": lambda x: 0.0}, TypeError, "clock must be callable with no arguments"),
        ({"bucket_seconds": 1e-12}, ValueError, "bucket_seconds must be at least 1e-06 s, got 1e-12"),
        # 0.2 took them, then every record() raised OverflowError (a clock reading / 5e-324).
        (
            {"window_seconds": 4.94e-321, "bucket_seconds": 5e-324},
            ValueError,
            "bucket_seconds must be at least",
        ),
        (
            {"window_seconds": 10**400},
            ValueError,
            "window_seconds must be a number of seconds, got an int of 1329",
        ),
        ({"bucket_seconds": 1e-6}, ValueError, "at most 1,000,000 are allowed"),
        ({"stabilization_seconds": math.nan}, ValueError, "stabilization_seconds"),
        ({"stabilization_seconds": "5"}, TypeError, "stabilization_seconds"),
        ({"thresholds": {"enter_high_volatility": 0.5}}, TypeError, "thresholds must be a Thresholds"),
        ({"policy": {}}, TypeError, "policy must be a TTLPolicy"),
        ({"name": ""}, ValueError, "name must be a non-empty string"),
        ({"name": 7}, TypeError, "name must be a non-empty string"),
    ],
)
def test_bad_configuration_is_refused_naming_the_parameter(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        VIXCircuitBreaker(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", ["calm", None, 1])
def test_bad_status_is_refused_and_not_recorded(vix_breaker: VIXCircuitBreaker, status: object) -> None:
    with pytest.raises(ValueError, match="invalid VixStatus"):
        vix_breaker.record(status)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid VixStatus"):
        vix_breaker.decide(status, 60)  # type: ignore[arg-type]
    assert vix_breaker.samples == 0


def test_bad_base_ttl_is_refused(vix_breaker: VIXCircuitBreaker) -> None:
    with pytest.raises(ValueError, match="base_ttl must be >= 0 seconds, or None"):
        vix_breaker.decide("normal", -5)
    with pytest.raises(ValueError, match="base_ttl must be >= 0"):
        vix_breaker.decide("normal", math.nan)
    with pytest.raises(TypeError, match="base_ttl must be a number of seconds or None"):
        vix_breaker.decide("normal", "60")  # type: ignore[arg-type]


@pytest.mark.parametrize("never", [None, math.inf])
def test_a_base_that_never_expires_is_never_lowered(vix_clock: FakeClock, never: float | None) -> None:
    breaker = VIXCircuitBreaker(min_samples=0, clock=vix_clock)
    for _ in range(10):
        breaker.record("panic")
    assert breaker.mode is CO
    decision = breaker.decide("normal", never)  # CIRCUIT_OPEN floors normal at 60 s: inf stays inf
    assert (decision.ttl, decision.strategy) == (math.inf, "base")
    assert breaker.decide("panic", 0).ttl == 10


def test_a_broken_logging_setup_does_not_fail_the_call(vix_clock: FakeClock) -> None:
    class ClosedStream(logging.Handler):  # raises where the standard handlers report and carry on
        def emit(self, record: logging.LogRecord) -> None:
            raise ValueError("I/O operation on closed file.")

    logging.getLogger("vix_ttl").addHandler(ClosedStream())  # the suite's conftest takes it off
    breaker = VIXCircuitBreaker(min_samples=0, clock=vix_clock)
    seen: list[Transition] = []
    breaker.subscribe(seen.append)
    assert breaker.record("panic") is CO
    assert len(seen) == 2  # listeners still hear every hop
    assert breaker.metrics()["log_errors"] == 2


def test_the_breakers_settings_clock_and_window_are_public_and_read_only(vix_clock: FakeClock) -> None:
    breaker = VIXCircuitBreaker(window_seconds=600, bucket_seconds=2, min_samples=5, clock=vix_clock)
    assert breaker.clock is vix_clock
    assert (breaker.window.window_seconds, breaker.window.bucket_seconds) == (600, 2)
    config = breaker.config
    assert (config.window_seconds, config.bucket_seconds, config.min_samples) == (600, 2, 5)
    assert config.clock is vix_clock and config.policy == TTLPolicy.default()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.min_samples = 0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        breaker.clock = time.time  # type: ignore[misc]


def test_bypass_and_base_compare_equal_to_their_names_and_strategies(vix_breaker: VIXCircuitBreaker) -> None:
    # Two enums, one meaning: mypy cannot know a Rule and a Strategy compare by value.
    assert vix_breaker.decide("panic", 60).strategy == BYPASS  # type: ignore[comparison-overlap]
    assert vix_breaker.decide("normal", 60).strategy == BASE  # type: ignore[comparison-overlap]
    assert BYPASS == "bypass" and BASE == "base"
    assert Strategy.BYPASS == BYPASS  # type: ignore[comparison-overlap]
    assert (
        TTLPolicy({m: {s: "bypass" if s == "panic" else BASE for s in VixStatus} for m in Mode}).rule(
            "circuit_open", "panic"
        )
        is BYPASS
    )


@given(st.lists(st.sampled_from(["normal", "NORMAL", "Warning", "panic", *VixStatus]), max_size=60))
def test_a_status_given_as_a_string_records_as_its_member(statuses: list[Any]) -> None:
    by_name, by_member = (VIXCircuitBreaker(min_samples=0, clock=FakeClock()) for _ in range(2))
    for status in statuses:
        assert by_name.record(status) is by_member.record(VixStatus.coerce(status))
    assert by_name.metrics()["panic_samples"] == by_member.metrics()["panic_samples"]
