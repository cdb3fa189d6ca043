"""The simulator's truth, and what it judges: wrong values served, and the frontier against fixed TTLs."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest

from vix_ttl.sim.cli import main
from vix_ttl.sim.frontier import build_frontier, frontier_strategies
from vix_ttl.sim.scenario import Scenario, calm_day, flash_crash, lineup_leak, load_scenario
from vix_ttl.sim.simulate import StrategyResult, check_strategy, simulate
from vix_ttl.sim.truth import Truth


def one_key(**settings: Any) -> Scenario:
    """One key, one call per 1/32 s step, 20 s: every call countable by hand."""
    defaults: dict[str, Any] = {"rate": 32, "hot_share": 1.0, "latency": 0.0, "ttl": 60.0}
    return Scenario(name="one-key", changes=((0.0, "normal"),), duration=20, **(defaults | settings))


def test_changes_follow_the_status_in_force() -> None:
    scenario = lineup_leak(calm_minutes=30, panic_minutes=30, after_minutes=0)
    truth = Truth(scenario)
    calm, panic = [], []
    for key in range(400):
        times = truth.changes(key)
        assert list(times) == sorted(times) and all(0 < t < scenario.duration for t in times)
        calm.append(sum(t < 1800 for t in times))
        panic.append(sum(t >= 1800 for t in times))
    # Poisson counts: mean 1800/300 = 6 in calm, 1800/2 = 900 in panic; 400 keys put the
    # sample mean within a few standard errors (sqrt(mean / 400)) of it.
    assert statistics.mean(calm) == pytest.approx(6, abs=4 * math.sqrt(6 / 400))
    assert statistics.mean(panic) == pytest.approx(900, abs=4 * math.sqrt(900 / 400))
    assert statistics.variance(panic) == pytest.approx(900, rel=0.25)  # Poisson: variance = mean


def test_the_truth_is_the_same_for_every_strategy_and_differs_between_keys() -> None:
    scenario = lineup_leak(calm_minutes=1, panic_minutes=2, after_minutes=1)
    assert list(Truth(scenario).changes(3)) == list(Truth(scenario).changes(3))
    assert list(Truth(scenario).changes(3)) != list(Truth(scenario).changes(4))
    other_seed = lineup_leak(calm_minutes=1, panic_minutes=2, after_minutes=1, seed=2)
    assert list(Truth(other_seed).changes(3)) != list(Truth(scenario).changes(3))


def test_version_and_the_next_change() -> None:
    truth = Truth(one_key(truth_changes=(5.0, 7.5)))
    assert truth.version(0, 4.9) == (0, 5.0)
    assert truth.version(0, 5.0) == (1, 7.5)  # a change at t belongs to t
    assert truth.version(0, 9.0) == (2, math.inf)


def test_a_value_is_wrong_once_the_truth_moved_after_its_computation_began() -> None:
    changed_at_10 = one_key(truth_changes=(10.0,))
    # Cached for 60 s from t=0: every call from t=10 on is served the old value, 320 of 640.
    assert simulate(changed_at_10, "fixed:60").wrong_served == 0.5
    # No cache and an instant backend: never wrong.
    assert simulate(changed_at_10, "fixed:0").wrong_served == 0
    # No cache, a 2-step backend, coalescing: a computation every 3 steps (the two calls
    # after it join it). The one that began at step 318 (t = 9.94) serves its old value
    # to its three callers, the one that arrived at t = 10 included; nobody else.
    slow = one_key(truth_changes=(10.0,), latency=1 / 16)
    result = simulate(slow, "fixed:0")
    assert result.computes == 214
    assert result.wrong_served == round(3 / 640, 6)


def test_wrong_served_is_split_calm_and_panic() -> None:
    scenario = Scenario(
        name="split",
        changes=((0.0, "normal"), (10.0, "panic")),
        duration=20,
        rate=32,
        hot_share=1.0,
        latency=0.0,
        truth_changes=(15.0,),
    )
    result = simulate(scenario, "fixed:60")
    assert result.calls_in_panic == 320
    assert (result.wrong_served_in_calm, result.wrong_served_in_panic) == (0.0, 0.5)
    assert result.wrong_served == 0.25


def test_a_replayed_file_of_values_brings_its_own_truth(tmp_path: Path) -> None:
    path = tmp_path / "odds.csv"
    path.write_text("t,value\n100,2.0\n101,2.0\n103,2.5\n110,2.5\n112,2.4\n")
    scenario = load_scenario(path)
    assert scenario.truth_changes == (3.0, 12.0)  # the times the value moved, from the first row


def test_change_every_is_checked() -> None:
    with pytest.raises(ValueError, match="change_every must give normal, warning and panic"):
        one_key(change_every={"normal": 300, "warning": 30, "panic": 0})
    with pytest.raises(ValueError, match="change_every"):
        one_key(change_every={"normal": 300})


def test_fixed_strategies_are_checked() -> None:
    assert check_strategy("fixed:2.5") == 2.5
    assert check_strategy("breaker+coalesce") is None
    for bad in ("fixed:-1", "fixed:inf", "fixed:x", "fixed2"):
        with pytest.raises(ValueError, match="fixed:<seconds>"):
            check_strategy(bad)


def test_the_bundled_scenarios_tell_their_story() -> None:
    crash = flash_crash()
    assert crash.duration == 3600 and crash.panic_seconds == 3 * 120
    day = calm_day()
    assert day.panic_seconds == 0 and {s for _, s in day.changes} == {"normal", "warning"}
    with pytest.raises(ValueError, match="half a period"):
        flash_crash(panic_minutes=15)


def results(points: dict[str, tuple[int, float]]) -> dict[str, StrategyResult]:
    """Strategy -> (computes, wrong served), as the simulator's results of 1,000 calls."""
    return {
        name: StrategyResult(name, requests=1000, computes=computes, wrong_served=wrong)
        for name, (computes, wrong) in points.items()
    }


def test_the_frontier_names_what_dominates_the_default() -> None:
    frontier = build_frontier(
        results(
            {
                "fixed:0": (1000, 0.0),
                "fixed:5": (90, 0.20),
                "fixed:10": (50, 0.30),
                "breaker+coalesce": (100, 0.25),
                "breaker+coalesce+learned": (90, 0.20),  # a tie with fixed 5
            }
        ),
        base_ttl=60,
    )
    assert frontier["dominated"] is True
    assert sorted(frontier["dominated_by"]) == ["fixed 5 s", "vix_ttl learned"]
    learned = next(p for p in frontier["points"] if p["policy"] == "learned")
    assert learned["dominated_by"] == []  # equal on both counts is not dominated
    assert {p["kind"] for p in frontier["points"]} == {"fixed", "vix_ttl"}
    fixed = next(p for p in frontier["points"] if p["name"] == "fixed 10 s")
    assert (fixed["ttl"], fixed["policy"], fixed["calls"]) == (10.0, None, 1000)


def test_frontier_runs_the_slowest_point_first() -> None:
    assert frontier_strategies([5, 0, 60]) == [
        "fixed:0.0",
        "breaker+coalesce",
        "breaker+coalesce+learned",
        "fixed:5.0",
        "fixed:60.0",
    ]


def test_frontier_ttls_run_exactly_as_asked() -> None:
    strategies = frontier_strategies([1.0000001, 1.0000002, -0.0])
    assert [check_strategy(s) for s in strategies if s.startswith("fixed:")] == [0.0, 1.0000001, 1.0000002]
    assert "fixed:-0.0" not in strategies
    points = build_frontier(results(dict.fromkeys(strategies, (10, 0.5))), base_ttl=60)["points"]
    names = sorted(p["name"] for p in points if p["kind"] == "fixed")
    assert names == ["fixed 0 s", "fixed 1.0000001 s", "fixed 1.0000002 s"]  # two TTLs, two names


SMALL = ["--calm-minutes", "1", "--panic-minutes", "2", "--after-minutes", "1", "--rate", "100"]


def test_frontier_command_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frontier", *SMALL, "--ttls", "0,5", "--workers", "1", "--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"scenario", "points", "dominated", "dominated_by"}
    names = [p["name"] for p in report["points"]]
    assert sorted(names) == ["fixed 0 s", "fixed 5 s", "vix_ttl default", "vix_ttl learned"]
    for point in report["points"]:
        assert {"name", "kind", "policy", "ttl", "computes", "wrong_served", "calls"} <= set(point)
        assert point["calls"] == 100 * 240
        assert 0 <= point["wrong_served"] <= 1
    by_name = {p["name"]: p for p in report["points"]}
    # No cache at all computes the most and serves the fewest moved values.
    assert by_name["fixed 0 s"]["computes"] == max(p["computes"] for p in report["points"])
    assert by_name["fixed 0 s"]["wrong_served"] == min(p["wrong_served"] for p in report["points"])


def test_frontier_command_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frontier", *SMALL, "--ttls", "5", "--workers", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "wrong served" in out and "fixed 5 s" in out and "vix_ttl learned" in out
    assert "vix_ttl default is" in out


@pytest.mark.parametrize("ttls", ["", "1,x", "-1", "nan"])
def test_frontier_bad_ttls(ttls: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["frontier", "--ttls", ttls])
    assert exit_.value.code == 2
    assert "--ttls needs comma-separated seconds" in capsys.readouterr().err


def test_the_frontier_plot_shows_the_curve_the_frontier_and_vix_ttl() -> None:
    from vix_ttl.sim.plot import frontier_figure  # matplotlib: the plot extra, in [dev]

    points = {"fixed:0": (1000, 0.01), "fixed:10": (50, 0.30), "breaker+coalesce": (100, 0.25)}
    points["breaker+coalesce+learned"] = (90, 0.10)
    figure = frontier_figure(lineup_leak(), build_frontier(results(points), base_ttl=60))
    (axis,) = figure.axes
    assert axis.get_xscale() == "log"
    assert axis.get_xlabel() == "backend computes (log scale)"
    assert axis.get_ylabel() == "calls served a wrong value (%)"
    legend = axis.get_legend()
    assert legend is not None
    assert [text.get_text() for text in legend.get_texts()] == [
        "fixed TTL",
        "frontier: nothing does better",
        "vix_ttl default",
        "vix_ttl learned",
    ]
    labels = {text.get_text() for text in axis.texts}
    assert {"0 s", "10 s", "vix_ttl default", "vix_ttl learned", "better"} <= labels
    assert axis.get_title() == (
        "lineup-leak: freshness against load\n"
        "vix_ttl default: dominated by vix_ttl learned\n"
        "vix_ttl learned: not dominated"
    )
