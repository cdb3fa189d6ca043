"""``vix-ttl simulate --plot`` and ``frontier --plot``: the pictures (the ``plot`` extra, matplotlib)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files, never a window

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from vix_ttl.sim.scenario import Scenario
from vix_ttl.sim.simulate import FIXED, StrategyResult

__all__ = [
    "BIN_SECONDS",
    "DPI",
    "frontier_figure",
    "plot",
    "plot_frontier",
    "simulation_figure",
]

_MODE_COLOURS = {"high_volatility": "#fde2b5", "circuit_open": "#f8b4b4"}
_STATUS_SHADES = {"warning": ("#f1c40f", "..."), "panic": ("#8e44ad", "///")}
_STRATEGY_COLOURS = {"bypass": "#c0392b", "breaker": "#2471a3", "breaker+coalesce": "#1e8449"}
_SPARE_COLOURS = ("#d35400", "#8e44ad", "#17a589", "#b7950b", "#2e4053", "#a93226")
_DASHES = ((6, 3), (5, 2, 1, 2), (2, 1.5), (8, 2, 1, 2, 1, 2), (3, 3), (1, 1))
"""The strategies after the first, each its own dash pattern (on :func:`simulation_figure`)."""
DPI = 110
"""Dots per inch, of the figures and of the files: what a test measures is what the file shows."""
BIN_SECONDS = 10
"""The plot's finest time resolution: per-second counts are averaged over a TTL, and never
over less than this many seconds."""


def plot(scenario: Scenario, results: dict[str, StrategyResult], path: Path) -> None:
    """Draw ``simulation_figure`` to *path*."""
    figure = simulation_figure(scenario, results)
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def simulation_figure(scenario: Scenario, results: dict[str, StrategyResult]) -> Figure:
    """Backend computes/s per strategy and the requests/s above, the panic ratio with its
    thresholds below, on one time axis in minutes; the status timeline shaded in both,
    the breaker's modes as bands in the lower one.

    Each point of a line is a mean over a whole TTL (at least ``BIN_SECONDS``), cut afresh
    at each change of status or mode: the keys that expire together once a TTL make a
    burst, and a mean over less than a TTL draws those bursts as a comb. Lines are drawn
    from the first strategy up, each thinner than the one below it and broken by its own
    dashes, so a strategy that makes the very same computes as another still shows.
    """
    figure, (load, ratio) = plt.subplots(2, 1, sharex=True, figsize=(12, 7), height_ratios=(3, 2), dpi=DPI)
    for axis in (load, ratio):
        _status_shades(axis, scenario)
    reference = next(iter(results.values()), None)  # every strategy's breaker sees the same statuses
    seconds = round(scenario.duration)
    cuts = _phase_cuts(scenario, [] if reference is None else reference.mode_per_second, seconds)
    load.plot(
        *_phase_means([scenario.rate] * seconds, cuts, max(BIN_SECONDS, scenario.ttl)),
        drawstyle="steps-post",
        color="#555555",
        linestyle=(0, (1, 2)),
        linewidth=1.2,
        zorder=5,  # on top, dotted: a line under it as high (bypass in panic) shows between its dots
        label="requests/s",
    )
    windows: set[float] = set()
    drawn: dict[str, list[int]] = {}
    for index, (name, result) in enumerate(results.items()):
        window = max(float(BIN_SECONDS), _ttl_of(name, scenario))
        windows.add(window)
        same = next((other for other, series in drawn.items() if series == result.computes_per_second), None)
        load.plot(
            *_phase_means(result.computes_per_second, cuts, window),
            drawstyle="steps-post",
            color=_STRATEGY_COLOURS.get(name, _SPARE_COLOURS[index % len(_SPARE_COLOURS)]),
            zorder=3 + index / 100,  # above the ones before it, under the requests
            label=f"backend computes/s: {name}" + (f" (the same as {same})" if same else ""),
            **_line_style(index),
        )
        drawn.setdefault(name, result.computes_per_second)
    load.set_yscale("symlog", linthresh=1)  # 0 has a place: the floor is labelled 0
    load.set_ylim(bottom=0)
    load.set_ylabel(_mean_label(windows))
    load.set_title(f"{scenario.name}: {scenario.rate:,.0f} requests/s, backend {scenario.latency * 1e3:g} ms")
    if reference is not None:
        minutes = [second / 60 for second in range(len(reference.panic_ratio_per_second))]
        ratio.plot(
            minutes, reference.panic_ratio_per_second, color="#000000", linewidth=1.2, label="panic ratio"
        )
        _mode_bands(ratio, reference.mode_per_second)
    _thresholds(ratio, scenario)
    ratio.set_ylim(-0.02, 1.02)  # a ratio of 0 shows above the axis, not on it
    ratio.set_ylabel("panic ratio (breaker window)")
    ratio.set_xlabel("minutes")
    for axis in (load, ratio):
        axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    figure.tight_layout()
    return figure


def _thresholds(axis: Any, scenario: Scenario) -> None:
    """The breaker's four thresholds as labelled horizontal lines."""
    thresholds = scenario.thresholds
    for value, style, label in (
        (thresholds.enter_high_volatility, ":", "enter high_volatility"),
        (thresholds.exit_high_volatility, "-.", "exit high_volatility"),
        (thresholds.enter_circuit_open, ":", "enter circuit_open"),
        (thresholds.exit_circuit_open, "-.", "exit circuit_open"),
    ):
        axis.axhline(value, color="#555555", linestyle=style, linewidth=0.8)
        axis.annotate(
            f"{label} {value:g}",
            (0, value),
            xycoords=("axes fraction", "data"),
            xytext=(3, 2),
            textcoords="offset points",
            fontsize="x-small",
            color="#555555",
        )


def _line_style(index: int) -> dict[str, Any]:
    """The *index*-th strategy's line: the first wide and pale, each next thinner and dashed its own way."""
    if index == 0:
        return {"linestyle": "solid", "linewidth": 4.5, "alpha": 0.5}
    dashes = _DASHES[index - 1] if index <= len(_DASHES) else (index, 2, 1, 2, 1, 2)  # each its own
    return {"linestyle": (0, dashes), "linewidth": 2.4 * 0.8 ** (index - 1)}


def _ttl_of(name: str, scenario: Scenario) -> float:
    """The TTL a strategy keeps in calm: a fixed one's own, else the scenario's base TTL."""
    return float(name.removeprefix(FIXED)) if name.startswith(FIXED) else scenario.ttl


def _mean_label(windows: set[float]) -> str:
    """The load axis's label: what each point of a line is the mean of."""
    if len(windows) != 1:
        return f"per second (mean of each line's TTL, {BIN_SECONDS} s or more)"
    (window,) = windows
    return f"per second (mean of {window:g} s{', a TTL' if window > BIN_SECONDS else ''})"


def _phase_cuts(scenario: Scenario, modes: list[str], seconds: int) -> list[int]:
    """The seconds no mean reaches across: the start, each change of status or of the
    breaker's mode, and the end."""
    cuts = {0, seconds}
    cuts |= {round(t) for t, _ in scenario.changes if 0 < round(t) < seconds}
    cuts |= {s for s in range(1, min(len(modes), seconds)) if modes[s] != modes[s - 1]}
    return sorted(cuts)


def _phase_means(
    per_second: list[int] | list[float], cuts: list[int], window: float
) -> tuple[list[float], list[float]]:
    """Per-second counts as means over whole windows inside each phase (a phase shorter
    than a window is one mean), as steps: each mean at its start, in minutes, and the
    last one again at the end."""
    times: list[float] = []
    means: list[float] = []
    end = min(cuts[-1], len(per_second))
    for start, stop in itertools.pairwise([c for c in cuts if c < end] + [end]):
        pieces = max(1, int((stop - start) // window))  # each a window or more: never a comb
        edges = [start + round(k * (stop - start) / pieces) for k in range(pieces + 1)]
        for left, right in itertools.pairwise(edges):
            times.append(left / 60)
            means.append(sum(per_second[left:right]) / (right - left))
    if means:
        times.append(end / 60)
        means.append(means[-1])
    return times, means


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
