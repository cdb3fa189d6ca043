"""The pictures of ``--plot`` (the ``plot`` extra, matplotlib): what a reader of each must see."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from vix_ttl.sim.frontier import build_frontier
from vix_ttl.sim.plot import BIN_SECONDS, _binned, frontier_figure, plot, plot_frontier, simulation_figure
from vix_ttl.sim.scenario import lineup_leak
from vix_ttl.sim.simulate import DEFAULT_STRATEGIES, StrategyResult, simulate


def results(points: dict[str, tuple[int, float]]) -> dict[str, StrategyResult]:
    """Strategy -> (computes, wrong served), as the simulator's results of 1,000 calls."""
    return {
        name: StrategyResult(name, requests=1000, computes=computes, wrong_served=wrong)
        for name, (computes, wrong) in points.items()
    }


@pytest.fixture(scope="module")
def leak() -> dict[str, object]:
    """A real run of the default strategies: 2 min calm, 6 min panic, 4 min calm, a 4 min window
    (the default scenario's arithmetic, scaled down; few calls a second: the plot shows rates)."""
    scenario = lineup_leak(calm_minutes=2, panic_minutes=6, after_minutes=4, rate=20, window_seconds=240)
    return {"scenario": scenario, **{s: simulate(scenario, s) for s in DEFAULT_STRATEGIES}}


def test_the_frontier_plot_shows_the_curve_the_frontier_and_vix_ttl() -> None:
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
        "vix_ttl learned",
        "vix_ttl default",
    ]
    labels = {text.get_text() for text in axis.texts}
    assert {"0 s", "10 s", "vix_ttl default", "vix_ttl learned"} <= labels
    assert axis.get_title() == "lineup-leak: freshness against load (vix_ttl default dominated)"


def test_the_run_plot_shows_the_story(leak: dict[str, object]) -> None:
    scenario = leak["scenario"]
    results = {s: leak[s] for s in DEFAULT_STRATEGIES}
    figure = simulation_figure(scenario, results)  # type: ignore[arg-type]
    load, ratio = figure.axes
    assert load.get_ylabel() == f"per second (mean of {BIN_SECONDS} s)" and load.get_yscale() == "symlog"
    assert 0 in load.get_yticks() and load.get_ylim()[0] == 0  # the floor is labelled 0
    assert ratio.get_xlabel() == "minutes" and ratio.get_ylabel() == "panic ratio (breaker window)"
    top = [t.get_text() for t in load.get_legend().get_texts()]  # type: ignore[union-attr]
    assert top == [
        "panic (the traffic's status)",
        "requests/s",
        "backend computes/s: bypass",
        "backend computes/s: breaker",
        "backend computes/s: breaker+coalesce",
    ]
    bottom = [t.get_text() for t in ratio.get_legend().get_texts()]  # type: ignore[union-attr]
    assert "breaker mode high_volatility" in bottom and "panic ratio" in bottom
    # The panic phase, hatched, from 2 to 8 minutes (the scenario's), in both panels.
    for axis in (load, ratio):
        hatched = [p for p in axis.patches if p.get_hatch()]
        assert len(hatched) == 1
        left = hatched[0].get_x()  # type: ignore[attr-defined]
        assert (left, left + hatched[0].get_width()) == (2.0, 8.0)  # type: ignore[attr-defined]
    labels = {text.get_text() for text in ratio.texts}
    assert "enter high_volatility 0.5" in labels and "exit circuit_open 0.6" in labels
    # The lines are 10 s means: 12 minutes make 72 points.
    assert all(len(line.get_xdata()) == 72 for line in load.get_lines())  # type: ignore[arg-type]


def test_per_second_counts_are_averaged_over_bins_placed_at_their_start_in_minutes() -> None:
    per_second = [0] * BIN_SECONDS + [BIN_SECONDS] * BIN_SECONDS + [3, 5]  # a last bin of 2 s
    times, means = _binned(per_second)
    assert times == [0.0, BIN_SECONDS / 60, 2 * BIN_SECONDS / 60]
    assert means == [0.0, BIN_SECONDS, 4.0]  # the last bin: the mean of its own seconds


def test_plot_and_plot_frontier_write_their_file_and_keep_no_figure_open(tmp_path: Path) -> None:
    scenario = lineup_leak(calm_minutes=1, panic_minutes=1, after_minutes=1)
    run = StrategyResult(
        "breaker",
        computes_per_second=[1] * 180,
        panic_ratio_per_second=[0.5] * 180,
        mode_per_second=["normal"] * 90 + ["high_volatility"] * 90,
    )
    frontier = build_frontier(results({"fixed:5": (10, 0.1), "breaker+coalesce": (5, 0.2)}), base_ttl=60)
    open_before = plt.get_fignums()
    plot(scenario, {"breaker": run}, tmp_path / "run.png")
    plot_frontier(scenario, frontier, tmp_path / "frontier.png")
    for name in ("run.png", "frontier.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == open_before  # a CLI run of many plots holds no memory for them
