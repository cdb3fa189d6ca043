"""``vix-ttl simulate --plot`` and ``frontier --plot``: the pictures (the ``plot`` extra, matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files, never a window

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from vix_ttl.sim.scenario import Scenario
from vix_ttl.sim.simulate import StrategyResult

__all__ = ["BIN_SECONDS", "frontier_figure", "plot", "plot_frontier", "simulation_figure"]

_MODE_COLOURS = {"high_volatility": "#fde2b5", "circuit_open": "#f8b4b4"}
_STATUS_SHADES = {"warning": ("#f1c40f", "..."), "panic": ("#8e44ad", "///")}
_STRATEGY_COLOURS = {"bypass": "#c0392b", "breaker": "#2471a3", "breaker+coalesce": "#1e8449"}
BIN_SECONDS = 10
"""The plot's time resolution: per-second counts averaged over bins of this many seconds."""


def plot(scenario: Scenario, results: dict[str, StrategyResult], path: Path) -> None:
    """Draw ``simulation_figure`` to *path*."""
    figure = simulation_figure(scenario, results)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def simulation_figure(scenario: Scenario, results: dict[str, StrategyResult]) -> Figure:
    """Backend computes/s per strategy and the requests/s above, the panic ratio with its
    thresholds below, on one time axis in minutes; the status timeline shaded in both,
    the breaker's modes as bands in the lower one."""
    figure, (load, ratio) = plt.subplots(2, 1, sharex=True, figsize=(12, 7), height_ratios=(3, 2))
    for axis in (load, ratio):
        _status_shades(axis, scenario)
    seconds = round(scenario.duration)
    times, requests = _binned([scenario.rate] * seconds)
    load.plot(times, requests, color="#7f8c8d", linestyle="--", linewidth=1, label="requests/s")
    for name, result in results.items():
        naive = name == "bypass"  # on top, thick: it is the line the others are measured against
        load.plot(
            *_binned(result.computes_per_second),
            color=_STRATEGY_COLOURS.get(name),
            linewidth=2.2 if naive else 1.4,
            zorder=4 if naive else 3,
            label=f"backend computes/s: {name}",
        )
    load.set_yscale("symlog", linthresh=1)  # 0 has a place: the floor is labelled 0
    load.set_ylim(bottom=0)
    load.set_ylabel(f"per second (mean of {BIN_SECONDS} s)")
    load.set_title(f"{scenario.name}: {scenario.rate:,.0f} requests/s, backend {scenario.latency * 1e3:g} ms")
    reference = next(iter(results.values()), None)  # every strategy's breaker sees the same statuses
    if reference is not None:
        minutes = [second / 60 for second in range(len(reference.panic_ratio_per_second))]
        ratio.plot(
            minutes, reference.panic_ratio_per_second, color="#000000", linewidth=1.2, label="panic ratio"
        )
        _mode_bands(ratio, reference.mode_per_second)
    thresholds = scenario.thresholds
    for value, style, label in (
        (thresholds.enter_high_volatility, ":", "enter high_volatility"),
        (thresholds.exit_high_volatility, "-.", "exit high_volatility"),
        (thresholds.enter_circuit_open, ":", "enter circuit_open"),
        (thresholds.exit_circuit_open, "-.", "exit circuit_open"),
    ):
        ratio.axhline(value, color="#555555", linestyle=style, linewidth=0.8)
        ratio.annotate(
            f"{label} {value:g}",
            (0, value),
            xycoords=("axes fraction", "data"),
            xytext=(3, 2),
            textcoords="offset points",
            fontsize="x-small",
            color="#555555",
        )
    ratio.set_ylim(0, 1.02)
    ratio.set_ylabel("panic ratio (breaker window)")
    ratio.set_xlabel("minutes")
    for axis in (load, ratio):
        axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    figure.tight_layout()
    return figure


def _binned(per_second: list[int] | list[float]) -> tuple[list[float], list[float]]:
    """Per-second counts as means over ``BIN_SECONDS`` bins, each placed at its start, in minutes."""
    starts = range(0, len(per_second), BIN_SECONDS)
    means = [sum(per_second[s : s + BIN_SECONDS]) / len(per_second[s : s + BIN_SECONDS]) for s in starts]
    return [s / 60 for s in starts], means


def _status_shades(axis: Any, scenario: Scenario) -> None:
    """The scenario's warning and panic phases, hatched: what the traffic said, not what the breaker did."""
    ends = [t for t, _ in scenario.changes[1:]] + [scenario.duration]
    labelled: set[str] = set()
    for (start, status), end in zip(scenario.changes, ends, strict=True):
        if status in _STATUS_SHADES and end > start:
            colour, hatch = _STATUS_SHADES[status]
            axis.axvspan(
                start / 60,
                end / 60,
                facecolor="none",
                edgecolor=colour,
                hatch=hatch,
                linewidth=0,
                alpha=0.5,
                zorder=1,
                label=None if status in labelled else f"{status} (the traffic's status)",
            )
            labelled.add(status)


def _mode_bands(axis: Any, modes: list[str]) -> None:
    """The breaker's modes other than normal, as coloured bands."""
    start, labelled = 0, set()
    for second in range(1, len(modes) + 1):
        if second == len(modes) or modes[second] != modes[start]:
            mode = modes[start]
            if mode in _MODE_COLOURS:
                axis.axvspan(
                    start / 60,
                    second / 60,
                    color=_MODE_COLOURS[mode],
                    zorder=0,
                    label=None if mode in labelled else f"breaker mode {mode}",
                )
                labelled.add(mode)
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
