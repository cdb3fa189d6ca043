from __future__ import annotations

import itertools

import pytest

from vix_ttl import BASE, BYPASS, Decision, Mode, Strategy, TTLPolicy, VixStatus

N, HV, CO = Mode.NORMAL, Mode.HIGH_VOLATILITY, Mode.CIRCUIT_OPEN
P, W, S = VixStatus.PANIC, VixStatus.WARNING, VixStatus.NORMAL

# (mode, status, base_ttl) -> (ttl, strategy) under the default policy.
DEFAULT_TABLE = [
    (N, P, 60, 0, "bypass"),
    (N, W, 60, 60, "base"),
    (N, S, 60, 60, "base"),
    (HV, P, 0, 5, "adaptive"),
    (HV, P, 3, 5, "adaptive"),
    (HV, P, 300, 300, "base"),
    (HV, W, 2, 10, "adaptive"),
    (HV, W, 30, 30, "base"),
    (HV, S, 60, 60, "base"),
    (CO, P, 0, 10, "adaptive"),
    (CO, P, 20, 20, "base"),
    (CO, W, 5, 30, "adaptive"),
    (CO, W, 45, 45, "base"),
    (CO, S, 1, 60, "adaptive"),
    (CO, S, 600, 600, "base"),
]


@pytest.mark.parametrize(("mode", "status", "base", "ttl", "strategy"), DEFAULT_TABLE)
def test_default_table_floors_never_lower_the_callers_ttl(
    mode: Mode, status: VixStatus, base: float, ttl: float, strategy: str
) -> None:
    decision = TTLPolicy.default().decide(mode, status, base)
    assert decision == Decision(ttl, Strategy(strategy), mode, status)
    assert decision.strategy == strategy


def test_every_default_cell_is_covered_above() -> None:
    assert {(m, s) for m, s, *_ in DEFAULT_TABLE} == set(itertools.product(Mode, VixStatus))


def test_default_rules() -> None:
    policy = TTLPolicy.default()
    assert policy.rule("normal", "panic") is BYPASS
    assert policy.rule(HV, S) is BASE
    assert policy.rule(CO, W) == 30


def test_base_with_a_zero_ttl_is_a_bypass() -> None:
    assert TTLPolicy.default().decide(N, S, 0).strategy == "bypass"


def full(rule: object) -> dict[str, dict[str, object]]:
    return {m.value: {s.value: rule for s in VixStatus} for m in Mode}


def test_custom_policy_with_string_keys_and_rules() -> None:
    cells = full("base")
    cells["high_volatility"]["panic"] = 2.5
    cells["NORMAL"] = cells.pop("normal")
    cells["NORMAL"]["PANIC"] = "bypass"
    del cells["NORMAL"]["panic"]
    policy = TTLPolicy(cells)  # type: ignore[arg-type]
    assert policy.decide(HV, P, 1).ttl == 2.5
    assert policy.decide(N, P, 1).strategy == "bypass"
    assert policy.decide(CO, P, 7).ttl == 7
    assert policy == TTLPolicy(cells)  # type: ignore[arg-type]
    assert policy != TTLPolicy.default()


@pytest.mark.parametrize(
    ("mutate", "error", "match"),
    [
        (lambda c: c["circuit_open"].pop("warning"), ValueError, r"missing cells: \(circuit_open, warning\)"),
        (lambda c: c.pop("normal"), ValueError, r"missing cells: .*\(normal, panic\)"),
        (lambda c: c["normal"].__setitem__("panic", -1), ValueError, r"\(normal, panic\) is -1"),
        (lambda c: c["normal"].__setitem__("panic", float("inf")), ValueError, "finite number"),
        (lambda c: c["normal"].__setitem__("panic", "forever"), ValueError, "expected BYPASS, BASE"),
        (lambda c: c["normal"].__setitem__("panic", True), ValueError, "expected BYPASS, BASE"),
        (lambda c: c.__setitem__("open", {}), ValueError, "invalid Mode 'open'"),
        (lambda c: c["normal"].__setitem__("calm", 1), ValueError, "invalid VixStatus 'calm'"),
        (lambda c: c.__setitem__("NORMAL", {}), ValueError, "mode 'normal' is given twice"),
        (lambda c: c.__setitem__("normal", [1, 2]), TypeError, "must be a mapping"),
    ],
)
def test_bad_policies_are_refused_naming_the_cell(mutate, error, match) -> None:  # type: ignore[no-untyped-def]
    cells = full(BASE)
    mutate(cells)
    with pytest.raises(error, match=match):
        TTLPolicy(cells)  # type: ignore[arg-type]


def test_policy_needs_a_mapping() -> None:
    with pytest.raises(TypeError, match="mapping mode -> status -> rule"):
        TTLPolicy([("normal", {})])  # type: ignore[arg-type]


@pytest.mark.parametrize("base", [-1, float("nan"), "60", True])
def test_bad_base_ttl(base: object) -> None:
    with pytest.raises((ValueError, TypeError), match="base_ttl"):
        TTLPolicy.default().decide(N, S, base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rule", "error"),
    [([1], TypeError), (None, TypeError), (-1, ValueError), ("never", ValueError), (10**400, ValueError)],
)
def test_a_bad_cell_says_what_is_wrong_with_the_right_error(rule: object, error: type[Exception]) -> None:
    cells = {m: {s: BASE for s in VixStatus} for m in Mode}
    cells[Mode.CIRCUIT_OPEN][VixStatus.PANIC] = rule  # type: ignore[assignment]
    with pytest.raises(error, match=r"cell \(circuit_open, panic\)"):
        TTLPolicy(cells)  # type: ignore[arg-type]
