"""``vix-ttl simulate --plot`` and ``frontier --plot``: the pictures (the ``plot`` extra, matplotlib)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files, never a window

import matplotlib.pyplot as plt
from matplotlib.cbook import STEP_LOOKUP_MAP
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from vix_ttl.sim.frontier import POLICIES
from vix_ttl.sim.scenario import Scenario
from vix_ttl.sim.simulate import FIXED, StrategyResult

__all__ = [
    "BIN_SECONDS",
    "DPI",
    "LABEL_REACH",
    "frontier_figure",
    "label_extent",
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
_FIXED_COLOUR = "#7f8c8d"
_FIXED_MARKER = 6.0
"""The fixed TTLs' marker size (points), drawn over vix_ttl's bigger ones: a TTL that lands on
vix_ttl's point shows inside it."""
_LABEL_GREY = "#4d5656"
"""The fixed TTLs' labels: darker than their markers, to be read."""
_POLICY_MARKERS = (16.0, 11.5, 8.0)
"""vix_ttl's marker sizes (points), in ``POLICIES`` order: each smaller one drawn over the one
before, so points that coincide show as rings around one centre."""
_GAP = 3.0
"""Pixels between a label and anything it must not touch."""
LABEL_REACH = 75.0
"""How far (pixels) a label may sit from the edge of its marker; past the first ring a thin
leader line ties it to the marker."""


def plot_frontier(scenario: Scenario, frontier: dict[str, Any], path: Path) -> None:
    """Draw ``frontier_figure`` to *path*."""
    figure = frontier_figure(scenario, frontier)
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def frontier_figure(scenario: Scenario, frontier: dict[str, Any]) -> Figure:
    """Backend computes (x, log) against wrong served (y): the fixed-TTL curve, the frontier
    (the points nothing dominates) and vix_ttl's points. The title says which of vix_ttl's
    points are dominated, and by what; an arrow points the way to better.

    Points at the same place share one label ("60 s = vix_ttl default"); every label is
    placed where it touches no other label, no marker and no line if it can, next to its
    marker (see :func:`_place_labels`)."""
    figure, axis = plt.subplots(figsize=(9, 6), dpi=DPI)
    points = frontier["points"]
    fixed = sorted((p for p in points if p["kind"] == "fixed"), key=lambda p: p["computes"])
    policies = sorted((p for p in points if p["kind"] == "vix_ttl"), key=_policy_order)
    markers: list[tuple[dict[str, Any], float]] = []  # each point and its marker's size (points)
    for index, p in enumerate(policies):
        size = _POLICY_MARKERS[min(index, len(_POLICY_MARKERS) - 1)]
        axis.plot(
            *_xy([p]),
            linestyle="none",
            marker="o",
            markersize=size,
            color=_colour(p),
            markeredgecolor="white",
            markeredgewidth=0.8,
            zorder=3 + index / 100,
            label=p["name"],
        )
        markers.append((p, size))
    # The curve under vix_ttl's markers, its points over them: a TTL on vix_ttl's point shows.
    axis.plot(*_xy(fixed), color=_FIXED_COLOUR, zorder=2.5)
    axis.plot(
        *_xy(fixed), linestyle="none", marker="o", markersize=_FIXED_MARKER, color=_FIXED_COLOUR, zorder=4
    )
    markers += [(p, _FIXED_MARKER) for p in fixed]
    best = sorted((p for p in points if not p["dominated_by"]), key=lambda p: p["computes"])
    (frontier_line,) = axis.step(
        *_xy(best), where="post", color="#2c3e50", linestyle=":", label="frontier: nothing does better"
    )
    axis.set_xscale("log")
    axis.set_xlabel("backend computes (log scale)")
    axis.set_ylabel("calls served a wrong value (%)")
    axis.margins(x=0.08, y=0.08)  # room for the labels of the points at the edges
    axis.set_ylim(bottom=0)
    axis.set_title(_frontier_title(scenario.name, points), fontsize="medium")
    curve = Line2D([], [], color=_FIXED_COLOUR, marker="o", markersize=_FIXED_MARKER, label="fixed TTL")
    axis.legend(
        handles=[curve, frontier_line, *axis.get_lines()[: len(policies)]],
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        fontsize="small",
        markerscale=0.7,
    )
    axis.grid(True, which="both", alpha=0.3)
    cue = axis.annotate(
        "better",
        xy=(0.015, 0.02),
        xycoords="axes fraction",
        xytext=(0.09, 0.12),
        textcoords="axes fraction",
        color="#555555",
        fontstyle="italic",
        horizontalalignment="left",
        verticalalignment="bottom",
        arrowprops={"arrowstyle": "-|>", "color": "#555555", "linewidth": 1.2, "shrinkA": 0, "shrinkB": 0},
        zorder=2,
    )
    figure.tight_layout()
    _place_labels(figure, axis, markers, cue)
    return figure


def _frontier_title(name: str, points: list[dict[str, Any]]) -> str:
    """The title: the scenario, then one line for each place vix_ttl's points sit, saying
    whether it is dominated and by what, what sits at the same place, and what it dominates."""
    lines = [f"{name}: freshness against load"]
    for place in _places(sorted((p for p in points if p["kind"] == "vix_ttl"), key=_policy_order)):
        here = [p for p in points if _point(p) == _point(place[0]) and p["kind"] == "fixed"]
        names = " = ".join([p["name"] for p in place] + [p["name"] for p in here])
        beaten_by = place[0]["dominated_by"]
        verdict = f"dominated by {_names(beaten_by)}" if beaten_by else "not dominated"
        beats = [p["name"] for p in points if p["kind"] == "fixed" and place[0]["name"] in p["dominated_by"]]
        lines.append(f"{names}: {verdict}" + (f"; it dominates {_names(beats)}" if beats else ""))
    return "\n".join(lines)


def _names(names: list[str], most: int = 3) -> str:
    """*names* as a list in words, the first *most* of them."""
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _policy_order(point: dict[str, Any]) -> tuple[int, str]:
    """vix_ttl's points in ``POLICIES`` order (the default first), then any other by name."""
    order = list(POLICIES)
    policy = point.get("policy")
    return (order.index(policy) if policy in order else len(order), point["name"])


def _colour(point: dict[str, Any]) -> str:
    """A point's colour: its policy's, or the fixed TTLs' grey."""
    if point["kind"] == "fixed":
        return _FIXED_COLOUR
    return _POLICY_COLOURS.get(point.get("policy") or "", "#2471a3")


def _places(points: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """*points* grouped by where they sit (the same computes and wrong served), in order."""
    places: dict[tuple[int, float], list[dict[str, Any]]] = {}
    for p in points:
        places.setdefault(_point(p), []).append(p)
    return list(places.values())


def _label_text(place: list[dict[str, Any]]) -> str:
    """One label for the points at one place: a fixed TTL by its seconds, vix_ttl's by name."""
    return " = ".join(f"{p['ttl']:g} s" if p["kind"] == "fixed" else p["name"] for p in place)


@dataclass
class _Label:
    """One place's label, before it is drawn: its text and style, its marker (centre and
    radius in pixels), its size in pixels."""

    text: str
    style: dict[str, Any]
    where: tuple[int, float]
    centre: tuple[float, float]
    radius: float
    size: tuple[float, float]


@dataclass
class _Spot:
    """Where a label goes: its offset from the marker's centre (pixels), its alignment, its
    extent, and how many things it touches there (0 but in a crowd nothing can help)."""

    offset: tuple[float, float]
    align: tuple[str, str]
    extent: Bbox
    clashes: int
    reach: float


def _place_labels(figure: Figure, axis: Any, markers: list[tuple[dict[str, Any], float]], cue: Any) -> None:
    """Label each place next to its marker, where it touches no other label, no marker,
    no leader line and not the "better" cue, inside the axes, crossing as few lines as it can.

    Everything is measured in display pixels once the layout is final. Each label in turn
    (vix_ttl's first) takes the best spot on rings growing outwards to ``LABEL_REACH``, in
    sixteen directions: the nearest free one, crossing a line costing as much as 25 pixels
    further out; beyond the first ring a leader line ties it to its marker. When a label
    finds no free spot, the labels are placed again with it first (a few times at most),
    and the try with the fewest clashes is drawn: a label is never dropped."""
    figure.canvas.draw()  # the final layout and limits: every pixel below is where it is drawn
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    to_pixels = axis.transData.transform
    scale = figure.dpi / 72  # points to pixels
    circles = [(*to_pixels(_point(p)), size / 2 * scale) for p, size in markers]
    fixed = [label_extent(cue, renderer).extents, cue.arrow_patch.get_window_extent(renderer).extents]
    lines = [[*a, *b] for line in axis.get_lines() for a, b in _segments(line)]
    labels: list[_Label] = []
    by_size = sorted(markers, key=lambda m: (m[0]["kind"] == "fixed", -m[1]))  # vix_ttl's, biggest first
    for where in dict.fromkeys(_point(p) for p, _ in by_size):
        place = [p for p, _ in by_size if _point(p) == where]
        style = {
            "color": _LABEL_GREY if place[0]["kind"] == "fixed" else _colour(place[0]),
            "fontweight": "normal" if place[0]["kind"] == "fixed" else "bold",
        }
        if len({_colour(p) for p in place}) > 1:
            style["color"] = "#2c3e50"
        probe = axis.annotate(_label_text(place), where, textcoords="offset points", xytext=(0, 0), **style)
        size = label_extent(probe, renderer).size
        probe.remove()
        x, y = to_pixels(where)
        radius = max(r for cx, cy, r in circles if (cx, cy) == (x, y))
        labels.append(_Label(_label_text(place), style, where, (x, y), radius, (size[0], size[1])))
    order = list(range(len(labels)))
    best: list[_Spot] | None = None
    for _ in range(6):
        room = _Room(
            axis.get_window_extent(renderer),
            np.array(circles, dtype=float).reshape(-1, 3),
            np.array(fixed, dtype=float).reshape(-1, 4),
            np.array(lines, dtype=float).reshape(-1, 4),
        )
        spots: dict[int, _Spot] = {}
        for index in order:
            spots[index] = spot = _best_spot(labels[index], room)
            leader = (labels[index].centre, tuple(spot.extent.corners().mean(axis=0))) if spot.reach else None
            room.take(spot.extent, leader)  # later labels keep off it, and off its leader line
        tried = [spots[index] for index in range(len(labels))]
        if best is None or sum(s.clashes for s in tried) < sum(s.clashes for s in best):
            best = tried
        crowded = [index for index in order if spots[index].clashes]
        if not crowded:
            break
        order = crowded + [index for index in order if index not in crowded]
    for label, spot in zip(labels, best or [], strict=True):
        axis.annotate(
            label.text,
            label.where,
            textcoords="offset points",
            xytext=(spot.offset[0] / scale, spot.offset[1] / scale),
            horizontalalignment=spot.align[0],
            verticalalignment=spot.align[1],
            arrowprops=(
                {"arrowstyle": "-", "linewidth": 0.7, "shrinkA": 0, "shrinkB": label.radius / scale}
                | {"color": label.style["color"]}
                if spot.reach > 0
                else None
            ),
            zorder=6,
            **label.style,
        )


def label_extent(label: Any, renderer: Any = None) -> Bbox:
    """Where a label's text is drawn, in display pixels (an annotation's own extent takes in
    its arrow too)."""
    return Text.get_window_extent(label, renderer)


def _segments(line: Any) -> list[tuple[Any, Any]]:
    """The straight pieces *line* is drawn as, in display pixels (none for markers alone)."""
    if line.get_linestyle() in ("None", "none", "", " "):
        return []
    xs, ys = line.get_xdata(), line.get_ydata()
    if line.get_drawstyle() != "default":
        xs, ys = STEP_LOOKUP_MAP[line.get_drawstyle()](xs, ys)
    pixels = line.axes.transData.transform(list(zip(xs, ys, strict=True)))
    return list(itertools.pairwise(pixels))


_DIRECTIONS = (45, 22.5, 67.5, 0, 90, -22.5, 112.5, -45, 135, -67.5, 157.5, -90, 180, -112.5, -157.5, -135)
"""Where a label is tried around its marker (degrees, counter-clockwise from the right):
above right first, where a fixed TTL's label always was."""
_REACHES = (0.0, 6.0, 12.0, 20.0, 30.0, 42.0, 56.0, LABEL_REACH - _GAP)
"""How far past its marker's edge (pixels) a label is tried, ring after ring."""


def _best_spot(label: _Label, room: _Room) -> _Spot:
    """The best spot for *label* in *room*: free, then near, then crossing few lines."""
    width, height = label.size
    best: tuple[float, _Spot] | None = None
    for reach in _REACHES:
        for preference, angle in enumerate(_DIRECTIONS):
            cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
            dx, dy = (label.radius + _GAP + reach) * cos, (label.radius + _GAP + reach) * sin
            ha = "left" if cos > 0.3 else "right" if cos < -0.3 else "center"
            va = "bottom" if sin > 0.3 else "top" if sin < -0.3 else "center"
            left = label.centre[0] + dx - {"left": 0, "right": width, "center": width / 2}[ha]
            bottom = label.centre[1] + dy - {"bottom": 0, "top": height, "center": height / 2}[va]
            extent = Bbox.from_bounds(left, bottom, width, height)
            clashes = room.clashes(extent)
            cost = 10_000 * clashes + reach + preference / 4
            if best is not None and cost >= best[0]:
                continue  # crossing lines only adds to it
            cost += 25 * room.crossings(extent)
            if best is None or cost < best[0]:
                best = (cost, _Spot((dx, dy), (ha, va), extent, clashes, reach))
    assert best is not None
    return best[1]


@dataclass
class _Room:
    """What a label must keep off, in display pixels: the axes' edges (*box*), the markers
    (*circles*: x, y, radius), what is already written (*taken*: x0, y0, x1, y1) and the
    lines (*segments*: x0, y0, x1, y1)."""

    box: Bbox
    circles: np.ndarray
    taken: np.ndarray
    segments: np.ndarray

    def take(self, extent: Bbox, leader: tuple[tuple[float, float], tuple[float, float]] | None) -> None:
        """A label now written at *extent*, with its *leader* line if it has one."""
        self.taken = np.vstack([self.taken, extent.extents])
        if leader is not None:
            self.segments = np.vstack([self.segments, [*leader[0], *leader[1]]])

    def clashes(self, spot: Bbox) -> int:
        """How many things a label at *spot* would touch, leaving the axes counting as one."""
        x0, y0, x1, y1 = spot.extents
        box = self.box
        inside = box.x0 <= x0 and x1 <= box.x1 and box.y0 <= y0 and y1 <= box.y1
        t = self.taken
        touched = (
            (t[:, 0] <= x1 + _GAP) & (x0 - _GAP <= t[:, 2]) & (t[:, 1] <= y1 + _GAP) & (y0 - _GAP <= t[:, 3])
        )
        cx, cy, radius = self.circles.T
        gaps = np.hypot(
            np.maximum(np.maximum(x0 - cx, 0), cx - x1), np.maximum(np.maximum(y0 - cy, 0), cy - y1)
        )
        return int(np.count_nonzero(touched) + np.count_nonzero(gaps < radius + _GAP / 2)) + (not inside)

    def crossings(self, spot: Bbox) -> int:
        """How many lines pass through *spot* (Liang-Barsky clipping, every segment at once)."""
        x0, y0, x1, y1 = spot.extents
        ax, ay, bx, by = self.segments.T
        dx, dy = bx - ax, by - ay
        low, high = np.zeros(len(ax)), np.ones(len(ax))
        meets = np.ones(len(ax), dtype=bool)
        for step, room in ((-dx, ax - x0), (dx, x1 - ax), (-dy, ay - y0), (dy, y1 - ay)):
            meets &= (step != 0) | (room >= 0)  # parallel to this edge and outside it: never meets
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = room / step
            low = np.where(step < 0, np.maximum(low, ratio), low)
            high = np.where(step > 0, np.minimum(high, ratio), high)
        return int(np.count_nonzero(meets & (low <= high)))


def _point(point: dict[str, Any]) -> tuple[int, float]:
    """A frontier point's computes and wrong served (in %): where it sits on the plot."""
    return point["computes"], point["wrong_served"] * 100


def _xy(points: list[dict[str, Any]]) -> tuple[list[int], list[float]]:
    """The plot coordinates of *points*: their computes, and their wrong served."""
    pairs = [_point(p) for p in points]
    return [x for x, _ in pairs], [y for _, y in pairs]
