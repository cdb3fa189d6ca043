"""The simulator: real vix_ttl code, simulated traffic; what it must show a user."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from vix_ttl.sim import simulate as simulation
from vix_ttl.sim.scenario import Scenario, lineup_leak, load_scenario
from vix_ttl.sim.simulate import DEFAULT_STRATEGIES, STRATEGIES, SWR_SECONDS, simulate

DATA = Path(__file__).parent / "data"
STEP = 1 / 32


def small_leak(**settings: object) -> Scenario:
    # 2 min calm, 6 min panic, 4 min calm; a 4 min window: the arithmetic of the
    # default scenario, scaled down so the suite stays fast.
    defaults: dict[str, object] = {"rate": 200, "window_seconds": 240}
    return lineup_leak(calm_minutes=2, panic_minutes=6, after_minutes=4, **(defaults | settings))


@pytest.fixture(scope="module")
def leak() -> dict[str, object]:
    scenario = small_leak()
    return {"scenario": scenario, **{s: simulate(scenario, s) for s in STRATEGIES}}


def test_every_request_is_one_real_call(leak: dict[str, object]) -> None:
    for strategy in STRATEGIES:
        result = leak[strategy]
        assert result.requests == 200 * 12 * 60  # type: ignore[attr-defined]
        assert sum(result.cache_info.values()) == result.requests  # type: ignore[attr-defined]


def test_the_breaker_protects_the_backend_during_the_panic(leak: dict[str, object]) -> None:
    bypass, breaker, coalesce = (leak[s] for s in DEFAULT_STRATEGIES)
    assert bypass.computes_in_panic == 200 * 6 * 60  # type: ignore[attr-defined]  # every panic request
    assert breaker.computes_in_panic <= 0.40 * bypass.computes_in_panic  # type: ignore[attr-defined]
    assert coalesce.computes_in_panic <= 0.05 * bypass.computes_in_panic  # type: ignore[attr-defined]
    assert coalesce.peak_computes_per_second < breaker.peak_computes_per_second  # type: ignore[attr-defined]


def test_no_value_is_ever_served_older_than_its_decided_ttl(leak: dict[str, object]) -> None:
    for strategy in STRATEGIES:
        result = leak[strategy]
        assert result.staleness_violations == 0  # type: ignore[attr-defined]
        allowed = 60 + (SWR_SECONDS if strategy.endswith("+swr") else 0)
        assert result.oldest_served_seconds["normal"] < allowed  # type: ignore[attr-defined]
    assert leak["bypass"].oldest_served_seconds["panic"] == 0  # type: ignore[attr-defined]  # always fresh
    assert 5 <= leak["breaker"].oldest_served_seconds["panic"] < 10  # type: ignore[attr-defined]


def test_stale_while_revalidate_spares_callers_the_wait_at_no_more_computes(leak: dict[str, object]) -> None:
    coalesce, swr = leak["breaker+coalesce"], leak["breaker+coalesce+swr"]

    def waited(result: object) -> int:  # calls that waited for a computation: their own, or one they joined
        info = result.cache_info  # type: ignore[attr-defined]
        return int(info["misses"] + info["stale"] + info["bypasses"] + info["coalesced"])

    assert swr.cache_info["served_stale"] > 0  # type: ignore[attr-defined]
    assert waited(swr) + swr.cache_info["served_stale"] == waited(coalesce)  # type: ignore[attr-defined]
    assert swr.computes <= coalesce.computes * 1.05  # type: ignore[attr-defined]
    assert coalesce.caller_wait_seconds["max"] >= 0.05  # type: ignore[attr-defined]  # the backend's latency


def test_early_refresh_recomputes_before_expiry(leak: dict[str, object]) -> None:
    coalesce, early = leak["breaker+coalesce"], leak["breaker+coalesce+early"]
    assert early.staleness_violations == 0  # type: ignore[attr-defined]
    assert early.cache_info["stale"] < coalesce.cache_info["stale"]  # type: ignore[attr-defined]


def test_the_mode_timeline_follows_the_hysteresis_arithmetic(leak: dict[str, object]) -> None:
    # Window 4 min, panic from minute 2 to 8: the ratio is the panic share of
    # the window; 50 % after 2 min of panic, 80 % after 3.2 min; after the
    # panic it falls below 60 % 1.6 min later, below 30 % 2.8 min later.
    hops = leak["breaker+coalesce"].transitions  # type: ignore[attr-defined]
    expected = [
        ("normal", "high_volatility", 4.0),
        ("high_volatility", "circuit_open", 5.2),
        ("circuit_open", "high_volatility", 9.6),
        ("high_volatility", "normal", 10.8),
    ]
    assert [(h["old"], h["new"]) for h in hops] == [(old, new) for old, new, _ in expected]
    for hop, (_, _, minute) in zip(hops, expected, strict=True):
        assert abs(hop["at_seconds"] - minute * 60) <= 1 + STEP  # one bucket, one step


def test_same_seed_same_run() -> None:
    scenario = lineup_leak(calm_minutes=0.5, panic_minutes=1, after_minutes=0.5, rate=100, window_seconds=60)
    first, second = simulate(scenario, "breaker"), simulate(scenario, "breaker")
    assert first.summary() == second.summary()
    other = simulate(Scenario(**{**scenario.__dict__, "seed": 2}), "breaker")
    assert other.cache_info != first.cache_info


def test_replay_of_timestamped_statuses() -> None:
    scenario = load_scenario(DATA / "replay.csv", rate=100, window_seconds=120, min_samples=20)
    assert scenario.changes == ((0.0, "normal"), (60.0, "warning"), (90.0, "panic"), (330.0, "normal"))
    assert scenario.duration == 331.0
    result = simulate(scenario, "breaker+coalesce")
    assert [h["new"] for h in result.transitions][:2] == ["high_volatility", "circuit_open"]
    assert result.staleness_violations == 0


def test_replay_of_observed_values_goes_through_the_detector() -> None:
    scenario = load_scenario(DATA / "odds.json", rate=50, window_seconds=120)
    statuses = [scenario.status_at(t) for t in range(600)]

    def panic_share(start: int, end: int) -> float:
        return statuses[start:end].count("panic") / (end - start)

    # Calm noise panics now and then (more while the estimate is young); the
    # volatility jump at t=200 panics far more, until the EWMA adapts.
    assert panic_share(200, 260) > 2 * panic_share(20, 200)
    result = simulate(scenario, "breaker+coalesce")
    assert result.computes_in_panic > 0
    assert result.staleness_violations == 0


@pytest.mark.parametrize(
    ("content", "suffix", "match"),
    [
        ("t,status\n0,calm\n", ".csv", r"row 1: invalid VixStatus 'calm'"),
        ("t,status\nsoon,normal\n", ".csv", "every row needs a number 't'"),
        ("t,odds\n0,1.5\n", ".csv", "row 1: needs a 'status' or a 'value'"),
        ("{not json", ".json", "not valid JSON"),
        ("[]", ".json", "expected a non-empty list"),
        ('[{"t": 0, "value": -2}]', ".json", "row 1: .*must be > 0 with transform='log'"),
    ],
)
def test_bad_replay_files_are_refused_with_the_reason(
    tmp_path: Path, content: str, suffix: str, match: str
) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_scenario(path)


def test_a_missing_replay_file() -> None:
    with pytest.raises(ValueError, match="cannot read scenario"):
        load_scenario(Path("/nowhere/at/all.csv"))


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"rate": 0}, "rate must be a finite number > 0"),
        ({"hot_share": 1.5}, r"hot_share must be a finite number in \[0, 1\]"),
        ({"keys": 0}, "keys must be"),
        ({"latency": -1}, "latency must be"),
        ({"step": 2}, "step must be"),
    ],
)
def test_bad_scenario_settings(settings: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        small_leak(**settings)


def test_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'lru'"):
        simulate(small_leak(), "lru")


def test_results_are_json_ready(leak: dict[str, object]) -> None:
    summary = leak["breaker"].summary()  # type: ignore[attr-defined]
    assert json.loads(json.dumps(summary)) == summary
    assert "computes_per_second" not in summary


def test_a_fleet_over_one_store_computes_each_key_once_at_a_time(
    leak: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight processes, each with its own in-flight sharing, over one store with leases:
    never two computations of one key at once fleet-wide, bypassed calls included (the
    lease holder's value, written through, reaches the processes waiting on it)."""
    running: Counter[int] = Counter()
    peak: Counter[int] = Counter()
    backend = simulation._Run._backend

    async def watched(run: Any, key: int) -> Any:
        running[key] += 1
        peak[key] = max(peak[key], running[key])
        try:
            return await backend(run, key)
        finally:
            running[key] -= 1

    monkeypatch.setattr(simulation._Run, "_backend", watched)
    fleet = simulate(small_leak(processes=8), "breaker+coalesce")
    single = leak["breaker+coalesce"]

    def stored_computes(result: object) -> int:  # computations whose result was stored
        return int(result.computes - result.cache_info["bypasses"])  # type: ignore[attr-defined]

    assert max(peak.values()) == 1
    assert fleet.requests == single.requests  # type: ignore[attr-defined]
    assert stored_computes(fleet) == stored_computes(single)
    assert fleet.staleness_violations == 0
    assert sum(fleet.cache_info.values()) == fleet.requests


def test_a_fleet_needs_a_whole_number_of_processes() -> None:
    with pytest.raises(ValueError, match=r"processes must be a finite number >= 1 \(a whole number\)"):
        small_leak(processes=0)


def test_a_value_moves_the_truth_only_beyond_the_tolerance(tmp_path: Path) -> None:
    path = tmp_path / "odds.csv"
    # From 2.0: +0.2 %, +0.4 %, +0.55 % (a change), then +0.05 % of 2.011 and back to 2.0 (-0.55 %).
    path.write_text("t,value\n0,2.0\n1,2.004\n2,2.008\n3,2.011\n4,2.012\n5,2.0\n")
    assert load_scenario(path).truth_changes == (3.0, 5.0)  # default: 0.5 %
    assert load_scenario(path, tolerance=0.005).truth_changes == (3.0, 5.0)
    assert load_scenario(path, tolerance=0).truth_changes == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert load_scenario(path, tolerance=0.01).truth_changes == ()
    with pytest.raises(ValueError, match=r"tolerance must be a finite number >= 0, got -0\.1"):
        load_scenario(path, tolerance=-0.1)


def test_the_noise_of_a_calm_feed_is_not_news() -> None:
    # tests/data/odds.json: 200 s of calm (0.1 % a second of noise), then 400 s of 4 % moves.
    def changes(tolerance: float) -> tuple[int, int]:
        times = load_scenario(DATA / "odds.json", tolerance=tolerance).truth_changes or ()
        return sum(t < 200 for t in times), sum(t >= 200 for t in times)

    assert changes(0) == (199, 400)
    assert changes(0.005) == (13, 209)


@pytest.mark.parametrize(
    ("content", "suffix"),
    [
        ("t,status,value\n0,normal,2.0\n1,panic,2.5\n", ".csv"),
        ('[{"t": 0, "status": "normal"}, {"t": 1, "value": 2.5}]', ".json"),
    ],
)
def test_a_file_with_both_statuses_and_values_is_refused(tmp_path: Path, content: str, suffix: str) -> None:
    path = tmp_path / f"both{suffix}"
    path.write_text(content)
    with pytest.raises(ValueError, match=r"both a 'status' and a 'value' column: drop 'value' to replay"):
        load_scenario(path)
