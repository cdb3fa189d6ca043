"""The hysteresis state machine alone: plain ratios, sample counts and times."""

from __future__ import annotations

import pytest

from vix_ttl import Mode, Thresholds
from vix_ttl.mode import ModeMachine

N, HV, CO = Mode.NORMAL, Mode.HIGH_VOLATILITY, Mode.CIRCUIT_OPEN


def machine(min_samples: int = 0, stabilization: float = 0.0) -> ModeMachine:
    return ModeMachine(Thresholds(), min_samples, stabilization)


def drive(m: ModeMachine, *ratios: float, samples: int = 100) -> list[Mode]:
    modes = []
    for i, ratio in enumerate(ratios):
        m.update(ratio, samples, float(i))
        modes.append(m.mode)
    return modes


@pytest.mark.parametrize(
    ("ratios", "expected"),
    [
        # Enter at >= the threshold, not a hair below.
        ((0.4999,), [N]),
        ((0.50,), [HV]),
        ((0.50, 0.7999), [HV, HV]),
        ((0.50, 0.80), [HV, CO]),
        # Leave at < the exit threshold, not at it.
        ((0.50, 0.30), [HV, HV]),
        ((0.50, 0.2999), [HV, N]),
        ((0.80, 0.60), [CO, CO]),
        ((0.80, 0.5999), [CO, HV]),
        # Hysteresis: inside the bands the mode holds, whichever way the ratio moves.
        ((0.50, 0.45, 0.31, 0.49), [HV, HV, HV, HV]),
        ((0.80, 0.79, 0.61, 0.65), [CO, CO, CO, CO]),
        ((0.2, 0.49, 0.31), [N, N, N]),
    ],
)
def test_transition_table_boundaries(ratios: tuple[float, ...], expected: list[Mode]) -> None:
    assert drive(machine(), *ratios) == expected


def test_one_update_settles_completely_upwards_with_two_events_in_order() -> None:
    m = machine()
    m.update(0.2, 100, 0.0)
    hops = m.update(0.9, 100, 1.0)
    assert hops is not None
    assert [(h.old, h.new, h.trigger) for h in hops] == [
        (N, HV, "sustained_panic"),
        (HV, CO, "sustained_panic"),
    ]
    assert all(h.panic_ratio == 0.9 and h.at == 1.0 for h in hops)
    assert m.mode is CO


def test_a_collapse_settles_completely_downwards() -> None:
    m = machine()
    m.update(0.9, 100, 0.0)
    hops = m.update(0.1, 100, 1.0)
    assert hops is not None
    assert [(h.old, h.new, h.trigger) for h in hops] == [(CO, HV, "recovery"), (HV, N, "recovery")]


def test_collapse_into_the_middle_band_stops_at_high_volatility() -> None:
    m = machine()
    m.update(0.9, 100, 0.0)
    m.update(0.45, 100, 1.0)
    assert m.mode is HV


def test_no_step_up_below_min_samples_but_step_down_always_follows() -> None:
    m = machine(min_samples=20)
    assert m.update(1.0, 19, 0.0) is None
    assert m.mode is N
    m.update(1.0, 20, 1.0)
    assert m.mode is CO
    m.update(0.0, 1, 2.0)
    assert m.mode is N


def test_stabilization_delays_steps_down_not_steps_up() -> None:
    m = machine(stabilization=60)
    m.update(0.9, 100, 0.0)
    assert m.mode is CO  # escalation is immediate
    m.update(0.5, 100, 10.0)  # CO exit condition starts to hold
    m.update(0.5, 100, 69.9)
    assert m.mode is CO
    m.update(0.5, 100, 70.0)
    assert m.mode is HV


def test_stabilization_restarts_when_the_ratio_comes_back() -> None:
    m = machine(stabilization=60)
    m.update(0.6, 100, 0.0)
    m.update(0.2, 100, 10.0)
    m.update(0.4, 100, 50.0)  # back inside the band: the clock restarts
    m.update(0.2, 100, 80.0)
    assert m.mode is HV
    m.update(0.2, 100, 139.9)
    assert m.mode is HV
    m.update(0.2, 100, 140.0)
    assert m.mode is N


def test_stabilization_per_level_on_a_collapse() -> None:
    # The ratio falls under both exits at t=10: each step down needs its own
    # condition held 60 s, and both held since t=10.
    m = machine(stabilization=60)
    m.update(0.9, 100, 0.0)
    m.update(0.1, 100, 10.0)
    m.update(0.1, 100, 70.0)
    assert m.mode is N


def test_reset_returns_to_normal() -> None:
    m = machine()
    m.update(0.9, 100, 0.0)
    m.reset()
    assert m.mode is N
    assert m.update(0.4, 100, 1.0) is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"enter_high_volatility": 1.5}, r"enter_high_volatility must be a number in \[0, 1\]"),
        ({"exit_circuit_open": -0.1}, r"exit_circuit_open must be a number in \[0, 1\]"),
        ({"enter_circuit_open": float("nan")}, "enter_circuit_open"),
        ({"exit_high_volatility": 0.5}, "exit_high_volatility .* strictly below enter_high_volatility"),
        ({"exit_circuit_open": 0.8}, "exit_circuit_open .* strictly below enter_circuit_open"),
        (
            {"exit_high_volatility": 0.45, "exit_circuit_open": 0.40},
            "exit_high_volatility .* must not exceed exit_circuit_open",
        ),
        (
            {"enter_high_volatility": 0.9, "exit_high_volatility": 0.3},
            "enter_high_volatility .* must not exceed enter_circuit_open",
        ),
    ],
)
def test_bad_thresholds_are_refused_with_the_reason(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Thresholds(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["0.8", None, True])
def test_a_threshold_that_is_not_a_number_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="enter_circuit_open must be a number in"):
        Thresholds(enter_circuit_open=value)  # type: ignore[arg-type]


def test_thresholds_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Thresholds().enter_circuit_open = 0.9  # type: ignore[misc]


def test_mode_coerce() -> None:
    assert Mode.coerce("CIRCUIT_OPEN") is CO
    with pytest.raises(ValueError, match="'normal', 'high_volatility', 'circuit_open'"):
        Mode.coerce("open")
