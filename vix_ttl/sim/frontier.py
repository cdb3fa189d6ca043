"""``vix-ttl frontier``: freshness against load, vix_ttl beside every fixed TTL.

The same traffic, seed and truth run under fixed TTLs and under vix_ttl's
shipped policies; each run is one point, (backend computes, share of calls
served a wrong value). A point is dominated by another with no more computes
and no more wrong served, better in at least one: then a fixed TTL would have
done at least as well on both counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vix_ttl.sim.simulate import FIXED, StrategyResult

__all__ = ["DEFAULT_TTLS", "POLICIES", "build_frontier", "dominates", "frontier_strategies"]

DEFAULT_TTLS = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
"""The fixed TTLs ``vix-ttl frontier`` compares with, unless ``--ttls`` says otherwise."""

POLICIES = {"default": "breaker+coalesce", "learned": "breaker+coalesce+learned"}
"""vix_ttl's shipped policies, and the simulator's strategy that runs each (breaker + coalescing)."""


def frontier_strategies(ttls: Sequence[float]) -> list[str]:
    """The strategies of a frontier: vix_ttl's policies, then the fixed TTLs, the slowest to run first."""
    fixed = [f"{FIXED}{ttl + 0.0!r}" for ttl in sorted(ttls)]  # TTL 0 computes every call: the longest run
    return fixed[:1] + list(POLICIES.values()) + fixed[1:]


def build_frontier(results: dict[str, StrategyResult], base_ttl: float) -> dict[str, Any]:
    """The frontier as data (what ``--json`` prints): the points, and whether the default is dominated."""
    names = {strategy: policy for policy, strategy in POLICIES.items()}
    points: list[dict[str, Any]] = []
    for strategy, result in results.items():
        policy = names.get(strategy)
        ttl = base_ttl if policy is not None else float(strategy.removeprefix(FIXED))
        points.append(
            {
                "name": f"vix_ttl {policy}" if policy is not None else f"fixed {_seconds(ttl)} s",
                "kind": "vix_ttl" if policy is not None else "fixed",
                "policy": policy,
                "ttl": ttl,
                "computes": result.computes,
                "wrong_served": result.wrong_served,
                "calls": result.requests,
                "computes_in_panic": result.computes_in_panic,
                "wrong_served_in_calm": result.wrong_served_in_calm,
                "wrong_served_in_panic": result.wrong_served_in_panic,
            }
        )
    points.sort(key=lambda p: (p["kind"] != "fixed", p["computes"]))
    for point in points:
        point["dominated_by"] = [other["name"] for other in points if dominates(other, point)]
    default = next((p for p in points if p["policy"] == "default"), None)
    dominated_by = [] if default is None else default["dominated_by"]
    return {"points": points, "dominated": bool(dominated_by), "dominated_by": dominated_by}


def _seconds(ttl: float) -> str:
    """*ttl* as people write it, unless that would make two TTLs look alike."""
    short = f"{ttl:g}"
    return short if float(short) == ttl else repr(ttl)


def dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """*a* is no worse than *b* on both counts and better on one."""
    no_worse: bool = a["computes"] <= b["computes"] and a["wrong_served"] <= b["wrong_served"]
    return no_worse and (a["computes"] < b["computes"] or a["wrong_served"] < b["wrong_served"])
