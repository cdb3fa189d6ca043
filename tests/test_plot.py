"""The pictures, measured: where their labels and lines are drawn, not their pixels.

Every check draws the figure (``canvas.draw``) and reads the geometry matplotlib drew:
the labels' extents in display pixels against each other, the markers and the axes;
which lines lie over which, and how.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")  # the plot extra, in [dev]

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from vix_ttl.sim.frontier import build_frontier
from vix_ttl.sim.plot import (
    BIN_SECONDS,
    LABEL_REACH,
    frontier_figure,
    label_extent,
    plot,
    plot_frontier,
    simulation_figure,
)
from vix_ttl.sim.scenario import Scenario, flash_crash, lineup_leak
from vix_ttl.sim.simulate import DEFAULT_STRATEGIES, StrategyResult, simulate


@pytest.fixture(autouse=True)
def _close_figures() -> Any:
    yield
    plt.close("all")


# ---------------------------------------------------------------------------- the frontier


def frontier(points: dict[str, tuple[int, float]]) -> dict[str, Any]:
    """The frontier of strategy -> (computes, wrong served), as if simulated."""
    results = {
        name: StrategyResult(name, requests=1000, computes=computes, wrong_served=wrong)
        for name, (computes, wrong) in points.items()
    }
    return build_frontier(results, base_ttl=60)


def curve(*ttls: float, scale: float = 1.0) -> dict[str, tuple[int, float]]:
    """Fixed TTLs on a curve like the simulator's: computes fall as 1/TTL, wrong served rises."""
    return {
        f"fixed:{ttl!r}": (round(200_000 / (1 + ttl)), scale * min(0.9, 0.005 + 0.06 * ttl**0.6))
        for ttl in ttls
    }


DEFAULT_CURVE = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)

CASES = {
    # The reported ones: the learned point near 30 s (its label printed over "30 s"),
    "flash-crash": {
        "fixed:120.0": (1530, 0.305),
        "fixed:60.0": (3024, 0.241),
        "fixed:30.0": (5939, 0.155),
        "fixed:10.0": (16666, 0.105),
        "fixed:5.0": (30475, 0.081),
        "fixed:2.0": (60760, 0.041),
        "fixed:1.0": (91161, 0.025),
        "fixed:0.0": (205108, 0.004),
        "breaker+coalesce": (23229, 0.141),
        "breaker+coalesce+learned": (9507, 0.172),
    },
    # both policies on the 60 s point (their labels on top of each other, far from it),
    "calm-day": {
        "fixed:120.0": (1530, 0.274),
        "fixed:60.0": (3024, 0.184),
        "fixed:30.0": (5939, 0.110),
        "fixed:10.0": (16666, 0.037),
        "fixed:5.0": (30475, 0.019),
        "fixed:2.0": (60760, 0.008),
        "fixed:1.0": (91161, 0.005),
        "fixed:0.0": (205108, 0.001),
        "breaker+coalesce": (3024, 0.184),
        "breaker+coalesce+learned": (3024, 0.184),
    },
    # the default a hair from 5 s, on the curve; the learned one below it.
    "lineup-leak": {
        "fixed:120.0": (2691, 0.523),
        "fixed:60.0": (5299, 0.472),
        "fixed:30.0": (10377, 0.426),
        "fixed:10.0": (29138, 0.350),
        "fixed:5.0": (53325, 0.276),
        "fixed:2.0": (106351, 0.158),
        "fixed:1.0": (159539, 0.094),
        "fixed:0.0": (358498, 0.013),
        "breaker+coalesce": (64530, 0.279),
        "breaker+coalesce+learned": (62457, 0.168),
    },
    # A crowd: sixteen TTLs, both policies among them, one of them on a fixed TTL.
    "crowd": {
        **curve(1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30, 45, 60),
        "breaker+coalesce": (curve(5)["fixed:5"][0] + 400, curve(5)["fixed:5"][1] + 0.002),
        "breaker+coalesce+learned": curve(5)["fixed:5"],
    },
    # Everything on one spot but one.
    "one-spot": {
        "fixed:0.0": (100_000, 0.01),
        "fixed:60.0": (3000, 0.2),
        "breaker+coalesce": (3000, 0.2),
        "breaker+coalesce+learned": (3000, 0.2),
    },
    # Labels pressed against every edge: the corners of the axes.
    "corners": {
        **curve(*DEFAULT_CURVE),
        "breaker+coalesce": (190_000, 0.9),
        "breaker+coalesce+learned": (1100, 0.0),
    },
}


def panels(figure: Figure) -> list[Any]:
    """The figure's axes, loosely typed: matplotlib's stubs type line data as any array."""
    return list(figure.axes)


def xs(line: Any) -> list[float]:
    return [float(x) for x in line.get_xdata()]


def ys(line: Any) -> list[float]:
    return [float(y) for y in line.get_ydata()]


def drawn(figure: Figure) -> Any:
    """Draw *figure*; its renderer."""
    figure.canvas.draw()
    return figure.canvas.get_renderer()  # type: ignore[attr-defined]


def point_labels(axis: Any) -> list[Any]:
    """The frontier's point labels: every text on the axes but the "better" cue."""
    return [text for text in axis.texts if text.get_text() != "better"]


def marker_circles(axis: Any) -> list[tuple[float, float, float]]:
    """Every marker drawn on *axis*: centre and radius, in display pixels."""
    scale = axis.figure.dpi / 72
    circles = []
    for line in axis.get_lines():
        if line.get_marker() in (None, "None", "none", "", " "):
            continue
        for x, y in axis.transData.transform(line.get_xydata()):
            circles.append((x, y, line.get_markersize() / 2 * scale))
    return circles


def gap(box: Bbox, x: float, y: float) -> float:
    """Pixels from (x, y) to the nearest point of *box* (0 inside it)."""
    return math.hypot(max(box.x0 - x, 0, x - box.x1), max(box.y0 - y, 0, y - box.y1))


@pytest.mark.parametrize("case", CASES)
def test_no_label_touches_another_label_a_marker_or_the_cue_and_each_stays_by_its_marker(case: str) -> None:
    figure = frontier_figure(flash_crash(), frontier(CASES[case]))
    renderer = drawn(figure)
    (axis,) = panels(figure)
    labels = point_labels(axis)
    boxes = [label_extent(text, renderer) for text in labels]
    cue = next(text for text in axis.texts if text.get_text() == "better")
    others = [label_extent(cue, renderer), cue.arrow_patch.get_window_extent(renderer)]
    for i, box in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            assert not box.overlaps(boxes[j]), (labels[i].get_text(), labels[j].get_text())
        assert not any(box.overlaps(other) for other in others), labels[i].get_text()
        for x, y, radius in marker_circles(axis):
            assert gap(box, x, y) >= radius, (labels[i].get_text(), x, y)
        inside = axis.get_window_extent(renderer)
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
        # Next to its own marker: its edge within LABEL_REACH of the marker's edge, and
        # tied to it by a leader line unless it touches the first ring.
        x, y = axis.transData.transform(labels[i].xy)
        radius = max(r for cx, cy, r in marker_circles(axis) if math.isclose(cx, x) and math.isclose(cy, y))
        assert gap(box, x, y) <= radius + LABEL_REACH, labels[i].get_text()
        if gap(box, x, y) > radius + 8:
            assert labels[i].arrow_patch is not None, labels[i].get_text()


@pytest.mark.parametrize("case", CASES)
def test_every_point_has_one_label_and_points_at_one_place_share_it(case: str) -> None:
    data = frontier(CASES[case])
    (axis,) = panels(frontier_figure(flash_crash(), data))
    labels = point_labels(axis)
    places = {(p["computes"], p["wrong_served"] * 100) for p in data["points"]}
    assert sorted(text.xy for text in labels) == sorted(places)  # one label a place
    for p in data["points"]:
        (text,) = (t for t in labels if t.xy == (p["computes"], p["wrong_served"] * 100))
        short = f"{p['ttl']:g} s" if p["kind"] == "fixed" else p["name"]
        assert short in text.get_text().split(" = ")


def test_points_at_one_place_show_as_rings_around_the_smallest() -> None:
    (axis,) = panels(frontier_figure(flash_crash(), frontier(CASES["calm-day"])))
    at_60 = [
        line
        for line in axis.get_lines()
        if line.get_marker() == "o" and (3024, 0.184 * 100) in [tuple(xy) for xy in line.get_xydata()]
    ]
    assert [line.get_color() for line in at_60] == ["#1e8449", "#8e44ad", "#7f8c8d"]  # default, learned, 60 s
    # Each drawn over the one before it, and smaller: every one shows.
    assert [line.get_zorder() for line in at_60] == sorted(line.get_zorder() for line in at_60)
    sizes = [line.get_markersize() for line in at_60]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 3
    (label,) = (text for text in point_labels(axis) if text.xy == (3024, 0.184 * 100))
    assert label.get_text() == "vix_ttl default = vix_ttl learned = 60 s"


@pytest.mark.parametrize(
    ("case", "verdicts"),
    [
        (
            "flash-crash",
            ["vix_ttl default: dominated by fixed 10 s", "vix_ttl learned: dominated by fixed 30 s"],
        ),
        ("calm-day", ["vix_ttl default = vix_ttl learned = fixed 60 s: not dominated"]),
        (
            "lineup-leak",
            ["vix_ttl default: dominated by fixed 5 s, vix_ttl learned", "vix_ttl learned: not dominated"],
        ),
        ("one-spot", ["vix_ttl default = vix_ttl learned = fixed 60 s: not dominated"]),
    ],
)
def test_the_title_says_which_points_are_dominated_and_by_what(case: str, verdicts: list[str]) -> None:
    (axis,) = panels(frontier_figure(flash_crash(), frontier(CASES[case])))
    assert axis.get_title().split("\n") == ["flash-crash: freshness against load", *verdicts]


def test_the_title_says_what_vix_ttl_dominates() -> None:
    points = {**curve(*DEFAULT_CURVE), "breaker+coalesce": (1000, 0.5)}
    points["breaker+coalesce+learned"] = (curve(10)["fixed:10"][0] - 10, curve(10)["fixed:10"][1] - 0.01)
    (axis,) = panels(frontier_figure(flash_crash(), frontier(points)))
    assert "vix_ttl learned: not dominated; it dominates fixed 10 s" in axis.get_title().split("\n")


def test_an_arrow_points_to_better_the_lower_left() -> None:
    figure = frontier_figure(flash_crash(), frontier(CASES["flash-crash"]))
    renderer = drawn(figure)
    (axis,) = panels(figure)
    (cue,) = (text for text in axis.texts if text.get_text() == "better")
    head = axis.transAxes.transform(cue.xy)
    tail = label_extent(cue, renderer)
    assert head[0] < tail.x0 and head[1] < tail.y0  # down and to the left of its word
    assert cue.arrow_patch is not None and cue.arrow_patch.get_visible()


# ------------------------------------------------------------------------- the simulation


def strategy_lines(axis: Any) -> list[Any]:
    """The load panel's lines in its legend, in the order they are drawn (bottom first)."""
    lines = [line for line in axis.get_lines() if not line.get_label().startswith("_")]
    return sorted(lines, key=lambda line: line.get_zorder())


def assert_every_line_shows(axis: Any) -> None:
    """Each line of the legend has data on the plot, is not transparent, and is never
    hidden whole by a line over it: every line drawn over another is thinner than it,
    or broken by dashes or dots, and no two share a dash pattern."""
    renderer = drawn(axis.figure)
    lines = strategy_lines(axis)
    bottom, top = axis.get_ylim()
    for line in lines:
        values = ys(line)
        assert values and line.get_visible() and (line.get_alpha() is None or line.get_alpha() > 0.3)
        assert line.get_linewidth() > 0 and line.get_linestyle() not in ("None", "none", "", " ")
        assert any(bottom <= y <= top for y in values), line.get_label()
        assert line.get_window_extent(renderer).width > 0
    patterns = [
        line.get_linestyle() if line.get_linestyle() == "-" else line._unscaled_dash_pattern for line in lines
    ]
    assert len({repr(pattern) for pattern in patterns}) == len(lines)  # no two drawn alike
    for under_index, under in enumerate(lines):
        for over in lines[under_index + 1 :]:
            assert over.get_linestyle() != "-" or over.get_linewidth() < under.get_linewidth(), (
                f"{over.get_label()} can hide {under.get_label()}"
            )


def synthetic(scenario: Scenario, series: dict[str, list[int]]) -> dict[str, StrategyResult]:
    """Results with the given computes per second, in normal mode throughout."""
    seconds = round(scenario.duration)
    return {
        name: StrategyResult(
            name,
            computes_per_second=computes,
            panic_ratio_per_second=[0.0] * seconds,
            mode_per_second=["normal"] * seconds,
        )
        for name, computes in series.items()
    }


def calm(minutes: int) -> Scenario:
    return Scenario(name="calm", changes=((0.0, "normal"),), duration=minutes * 60)


def test_keys_expiring_together_make_no_comb() -> None:
    # The bypass's calm: 51 keys computed in one burst each TTL (60 s), nothing between.
    scenario = calm(30)
    burst = [51 if second % 60 == 0 else 0 for second in range(30 * 60)]
    figure = simulation_figure(scenario, synthetic(scenario, {"bypass": burst}))
    load = panels(figure)[0]
    (bypass,) = (line for line in load.get_lines() if line.get_label() == "backend computes/s: bypass")
    assert set(ys(bypass)) == {51 / 60}  # flat: one burst a TTL, averaged over a TTL
    assert load.get_ylabel() == "per second (mean of 60 s, a TTL)"


def test_the_same_computes_still_show_and_say_so() -> None:
    # flash-crash: the breaker never trips in a 2-minute panic, so it computes what bypass does.
    scenario = calm(10)
    burst = [51 if second % 60 == 0 else 0 for second in range(600)]
    series = {
        "bypass": burst,
        "breaker": list(burst),
        "breaker+coalesce": [20 if s % 60 == 0 else 0 for s in range(600)],
    }
    load = panels(simulation_figure(scenario, synthetic(scenario, series)))[0]
    labels = [text.get_text() for text in load.get_legend().get_texts()]
    assert labels == [
        "requests/s",
        "backend computes/s: bypass",
        "backend computes/s: breaker (the same as bypass)",
        "backend computes/s: breaker+coalesce",
    ]
    assert_every_line_shows(load)


def test_every_strategy_shows_however_many() -> None:
    scenario = calm(5)
    names = ["bypass", "breaker", "breaker+coalesce", "breaker+coalesce+swr", "breaker+coalesce+early"]
    names += ["breaker+coalesce+learned", "fixed:0", "fixed:120"]
    series = {name: [3] * 300 for name in names}  # all alike: the worst case
    assert_every_line_shows(panels(simulation_figure(scenario, synthetic(scenario, series)))[0])


@pytest.fixture(scope="module")
def small_run() -> tuple[Scenario, dict[str, StrategyResult]]:
    """A real run, scaled down: 2 min calm, 6 min panic, 4 min calm, a 4 min window."""
    scenario = lineup_leak(calm_minutes=2, panic_minutes=6, after_minutes=4, rate=100, window_seconds=240)
    return scenario, {strategy: simulate(scenario, strategy) for strategy in DEFAULT_STRATEGIES}


def test_a_real_run_shows_every_strategy_and_the_story(small_run: tuple[Scenario, dict[str, Any]]) -> None:
    scenario, results = small_run
    figure = simulation_figure(scenario, results)
    load, ratio = panels(figure)
    assert_every_line_shows(load)
    reference = results["bypass"]
    modes = reference.mode_per_second
    changes = [s for s in range(1, len(modes)) if modes[s] != modes[s - 1]]
    assert changes  # the breaker went through its modes
    # Steps that change where the story changes: each status and mode change is an edge.
    for line in strategy_lines(load):
        edges = {round(x * 60) for x in xs(line)}
        assert {120, 480, *changes} <= edges
        assert max(xs(line)) == scenario.duration / 60
    # No comb in calm: past the first TTL, the bypass's calm means are all alike.
    (bypass,) = (line for line in load.get_lines() if line.get_label() == "backend computes/s: bypass")
    calm_means = [y for x, y in zip(xs(bypass), ys(bypass), strict=True) if x * 60 >= 480 + 60]
    assert max(calm_means) <= 1.5 * min(calm_means) and min(calm_means) > 0
    # The modes still shade the lower panel, the panic still hatches both.
    assert {"breaker mode high_volatility", "breaker mode circuit_open"} <= {
        text.get_text() for text in ratio.get_legend().get_texts()
    }
    assert all(len([p for p in axis.patches if p.get_hatch()]) == 1 for axis in (load, ratio))
    # The panic ratio at 0 shows above the axis line, not on it.
    assert ratio.get_ylim()[0] < 0


def test_the_windows_are_never_shorter_than_a_bin() -> None:
    scenario = Scenario(name="short-ttl", changes=((0.0, "normal"),), duration=300, ttl=2.0)
    load = panels(simulation_figure(scenario, synthetic(scenario, {"bypass": [1] * 300})))[0]
    assert load.get_ylabel() == f"per second (mean of {BIN_SECONDS} s)"


def test_plot_and_plot_frontier_write_their_file_and_keep_no_figure_open(tmp_path: Path) -> None:
    scenario = lineup_leak(calm_minutes=1, panic_minutes=1, after_minutes=1)
    run = StrategyResult(
        "breaker",
        computes_per_second=[1] * 180,
        panic_ratio_per_second=[0.5] * 180,
        mode_per_second=["normal"] * 90 + ["high_volatility"] * 90,
    )
    points = frontier({"fixed:5": (10, 0.1), "breaker+coalesce": (5, 0.2)})
    open_before = plt.get_fignums()
    plot(scenario, {"breaker": run}, tmp_path / "run.png")
    plot_frontier(scenario, points, tmp_path / "frontier.png")
    for name in ("run.png", "frontier.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == open_before  # a CLI run of many plots holds no memory for them
