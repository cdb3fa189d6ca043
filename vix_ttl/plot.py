"""``vix-ttl simulate --plot``: one picture of a run (needs the ``plot`` extra, matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files, never a window

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from vix_ttl.scenario import Scenario
from vix_ttl.simulate import StrategyResult

__all__ = ["frontier_figure", "plot", "plot_frontier"]

_MODE_COLOURS = {"normal": "#ffffff", "high_volatility": "#fde2b5", "circuit_open": "#f8b4b4"}
_STRATEGY_COLOURS = {"bypass": "#c0392b", "breaker": "#2471a3", "breaker+coalesce": "#1e8449"}


def plot(scenario: Scenario, results: dict[str, StrategyResult], path: Path) -> None:
    """Requests/s, backend computes/s per strategy, panic ratio and mode bands on one time axis."""
    figure, (load, ratio) = plt.subplots(2, 1, sharex=True, figsize=(11, 7), height_ratios=(3, 2))
    reference = next(iter(results.values()), None)  # every strategy's breaker sees the same statuses
    minutes = [second / 60 for second in range(round(scenario.duration))]
    load.plot(minutes, [scenario.rate] * len(minutes), color="#7f8c8d", linestyle="--", label="requests/s")
    for name, result in results.items():
        series = [max(n, 0.5) for n in result.computes_per_second]  # 0 cannot sit on a log axis
        load.plot(
            minutes[: len(series)],
            series,
            color=_STRATEGY_COLOURS.get(name),
            linewidth=0.8,
            label=f"backend computes/s: {name}",
        )
    load.set_yscale("log")
    load.set_ylabel("per second")
    load.legend(loc="upper left", fontsize="small")
    load.set_title(f"{scenario.name}: {scenario.rate:,.0f} requests/s, backend {scenario.latency * 1e3:g} ms")
    if reference is not None:
        ratio_minutes = minutes[: len(reference.panic_ratio_per_second)]
        ratio.plot(ratio_minutes, reference.panic_ratio_per_second, color="#000000", label="panic ratio")
        for axis in (load, ratio):
            _mode_bands(axis, reference.mode_per_second)
    thresholds = scenario.thresholds
    for value, style in (
        (thresholds.enter_high_volatility, ":"),
        (thresholds.exit_high_volatility, "-."),
        (thresholds.enter_circuit_open, ":"),
        (thresholds.exit_circuit_open, "-."),
    ):
        ratio.axhline(value, color="#555555", linestyle=style, linewidth=0.7)
    ratio.set_ylim(0, 1.02)
    ratio.set_ylabel("panic ratio")
    ratio.set_xlabel(
        "minutes; bands: orange high_volatility, red circuit_open; thresholds: dotted enter, dash-dot exit"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _mode_bands(axis: Any, modes: list[str]) -> None:
    start = 0
    for second in range(1, len(modes) + 1):
        if second == len(modes) or modes[second] != modes[start]:
            if modes[start] != "normal":
                axis.axvspan(start / 60, second / 60, color=_MODE_COLOURS[modes[start]], zorder=0)
            start = second


_POLICY_COLOURS = {"default": "#1e8449", "learned": "#8e44ad"}


def plot_frontier(scenario: Scenario, frontier: dict[str, Any], path: Path) -> None:
    """Draw ``frontier_figure`` to *path*."""
    figure = frontier_figure(scenario, frontier)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def frontier_figure(scenario: Scenario, frontier: dict[str, Any]) -> Figure:
    """Backend computes (x, log) against wrong served (y): the fixed-TTL curve, the frontier
    (the points nothing dominates) and vix_ttl's points, labelled."""
    figure, axis = plt.subplots(figsize=(9, 6))
    points = frontier["points"]
    fixed = sorted((p for p in points if p["kind"] == "fixed"), key=lambda p: p["computes"])
    axis.plot(*_xy(fixed), color="#7f8c8d", marker="o", label="fixed TTL")
    for p in fixed:
        axis.annotate(f"{p['ttl']:g} s", _point(p), textcoords="offset points", xytext=(4, 4))
    best = sorted((p for p in points if not p["dominated_by"]), key=lambda p: p["computes"])
    axis.step(*_xy(best), where="post", color="#2c3e50", linestyle=":", label="frontier: nothing does better")
    for p in points:
        if p["kind"] == "vix_ttl":
            colour = _POLICY_COLOURS.get(p["policy"], "#2471a3")
            axis.scatter(*_xy([p]), s=90, color=colour, zorder=3, label=p["name"])
            axis.annotate(
                p["name"],
                _point(p),
                textcoords="offset points",
                xytext=(-8, -14),
                horizontalalignment="right",  # left of the point: the fixed-TTL labels sit right
                color=colour,
                fontweight="bold",
            )
    axis.set_xscale("log")
    axis.set_xlabel("backend computes (log scale)")
    axis.set_ylabel("calls served a wrong value (%)")
    axis.set_ylim(bottom=0)
    verdict = "dominated" if frontier["dominated"] else "not dominated"
    axis.set_title(f"{scenario.name}: freshness against load (vix_ttl default {verdict})")
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    return figure


def _point(point: dict[str, Any]) -> tuple[int, float]:
    """A frontier point's computes and wrong served (in %): where it sits on the plot."""
    return point["computes"], point["wrong_served"] * 100


def _xy(points: list[dict[str, Any]]) -> tuple[list[int], list[float]]:
    """The plot coordinates of *points*: their computes, and their wrong served."""
    pairs = [_point(p) for p in points]
    return [x for x, _ in pairs], [y for _, y in pairs]
