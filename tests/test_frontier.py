"""``vix-ttl frontier``'s points: vix_ttl's policies beside fixed TTLs, and which dominates which."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from vix_ttl.sim.frontier import POLICIES, build_frontier, frontier_strategies
from vix_ttl.sim.simulate import StrategyResult, check_strategy


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


def test_without_the_default_policy_nothing_is_said_dominated() -> None:
    frontier = build_frontier(results({"fixed:5": (10, 0.0), "breaker+coalesce+learned": (90, 0.5)}), 60)
    assert (frontier["dominated"], frontier["dominated_by"]) == (False, [])
    learned = next(p for p in frontier["points"] if p["kind"] == "vix_ttl")
    assert learned["dominated_by"] == ["fixed 5 s"]  # the points are still judged


counts = st.tuples(st.integers(0, 50), st.sampled_from([0.0, 0.1, 0.2, 0.5]))


@given(
    fixed=st.dictionaries(st.sampled_from([0.0, 1.0, 2.5, 5.0, 60.0]), counts, max_size=5),
    policies=st.dictionaries(st.sampled_from(list(POLICIES.values())), counts),
)
def test_a_point_is_dominated_exactly_by_the_points_no_worse_on_both_counts_and_better_on_one(
    fixed: dict[float, tuple[int, float]], policies: dict[str, tuple[int, float]]
) -> None:
    runs = {f"fixed:{ttl!r}": point for ttl, point in fixed.items()} | policies
    frontier = build_frontier(results(runs), base_ttl=30)
    points = frontier["points"]
    assert len(points) == len(runs)
    for point in points:
        expected = [
            other["name"]
            for other in points
            if (other["computes"], other["wrong_served"]) != (point["computes"], point["wrong_served"])
            and other["computes"] <= point["computes"]
            and other["wrong_served"] <= point["wrong_served"]
        ]
        assert point["dominated_by"] == expected
        assert point["ttl"] == (30 if point["kind"] == "vix_ttl" else check_strategy(f"fixed:{point['ttl']}"))
    # The fixed TTLs first, each kind by its computes: the order the table and the plot read them in.
    assert [(p["kind"] != "fixed", p["computes"]) for p in points] == sorted(
        (p["kind"] != "fixed", p["computes"]) for p in points
    )
    default: Any = next((p for p in points if p["policy"] == "default"), None)
    assert frontier["dominated_by"] == ([] if default is None else default["dominated_by"])
    assert frontier["dominated"] is bool(frontier["dominated_by"])
