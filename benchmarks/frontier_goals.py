"""The learned policy's goals, read off ``vix-ttl frontier --json``: how far below the fixed curve it is.

For every vix_ttl point of a report: its computes and wrong served, the fixed-TTL curve at
its computes (wrong served interpolated linearly in log(computes) between the two
neighbouring fixed TTLs; outside their range, the nearest fixed point's), the gap (curve
minus the point, in points of wrong served: positive is below the curve, better), and the
fixed TTLs that dominate it. The goals then, per scenario:

- the learned point dominated by no fixed TTL;
- on a scenario with panic, the learned point at least 3 points of wrong served below the
  curve;
- on lineup-leak as bundled (every setting its default), the learned point with no more
  computes than the default's and at most 12 % wrong served.

A point measured apart (``vix-ttl simulate --strategies breaker+coalesce+learned --json``,
on the same scenario and flags) may replace a report's: ``--learned FILE`` (the fixed
points do not move when the policy does). A script, not a test: it prints a table and
exits 1 when a goal fails.

    python benchmarks/frontier_goals.py lineup-leak.json flash-crash.json ...
    python benchmarks/frontier_goals.py lineup-leak.json --learned learned-lineup-leak.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path
from typing import Any

from vix_ttl.sim.frontier import dominates
from vix_ttl.sim.report import frontier_report
from vix_ttl.sim.scenario import lineup_leak

GAP_GOAL = 0.03
"""Points of wrong served the learned point must be below the fixed curve, with panic."""
LINEUP_WRONG_GOAL = 0.12
"""Lineup-leak: the learned point's wrong served at most this."""
BUNDLED_LINEUP_LEAK = frontier_report(lineup_leak(), {})["scenario"]
"""What a report says of lineup-leak run with every setting its default."""


def fixed_curve(points: list[dict[str, Any]], computes: float) -> float:
    """Wrong served of the fixed-TTL curve at *computes*, log-linear between neighbours."""
    fixed = sorted((p["computes"], p["wrong_served"]) for p in points if p["kind"] == "fixed")
    if not fixed:
        return math.nan
    if computes <= fixed[0][0]:
        return float(fixed[0][1])
    if computes >= fixed[-1][0]:
        return float(fixed[-1][1])
    for (c0, w0), (c1, w1) in itertools.pairwise(fixed):
        if c0 <= computes <= c1:
            if c1 == c0:
                return float(min(w0, w1))
            share = (math.log(computes) - math.log(c0)) / (math.log(c1) - math.log(c0))
            return float(w0 + share * (w1 - w0))
    raise AssertionError("unreachable: computes within the fixed points' range")


def dominated_by(point: dict[str, Any], points: list[dict[str, Any]]) -> list[str]:
    """The fixed points no worse than *point* on both counts and better on one."""
    return [p["name"] for p in points if p["kind"] == "fixed" and dominates(p, point)]


def learned_point(path: Path) -> dict[str, Any]:
    """The learned point of a ``vix-ttl simulate --json`` report, as a frontier point."""
    report = json.loads(path.read_text())
    result = report["strategies"]["breaker+coalesce+learned"]
    return {
        "name": "vix_ttl learned",
        "kind": "vix_ttl",
        "policy": "learned",
        "computes": result["computes"],
        "computes_in_panic": result["computes_in_panic"],
        "wrong_served": result["wrong_served"],
        "wrong_served_in_calm": result["wrong_served_in_calm"],
        "wrong_served_in_panic": result["wrong_served_in_panic"],
    }


def rows(report: dict[str, Any], learned: dict[str, Any] | None) -> tuple[list[str], list[str]]:
    """The table's lines for one report, and the goals it fails."""
    points = report["points"]
    if learned is not None:
        points = [p for p in points if p.get("policy") != "learned"] + [learned]
    name, panic = report["scenario"]["name"], report["scenario"]["panic_seconds"] > 0
    lines, failed = [], []
    by_policy = {p["policy"]: p for p in points if p["kind"] == "vix_ttl"}
    for policy, p in sorted(by_policy.items()):
        curve = fixed_curve(points, p["computes"])
        gap = curve - p["wrong_served"]
        dominators = dominated_by(p, points)
        in_panic = f"{p['wrong_served_in_panic']:.1%}" if panic else "-"
        lines.append(
            f"{name:<22} {policy:<8} {p['computes']:>9,} {p['wrong_served']:>7.1%} "
            f"{p['wrong_served_in_calm']:>7.1%} {in_panic:>7} "
            f"{curve:>7.1%} {gap * 100:>+7.1f}  {', '.join(dominators) or '-'}"
        )
    learned_p, default_p = by_policy.get("learned"), by_policy.get("default")
    if learned_p is not None:
        if dominated_by(learned_p, points):
            failed.append(f"{name}: learned dominated by {', '.join(dominated_by(learned_p, points))}")
        gap = fixed_curve(points, learned_p["computes"]) - learned_p["wrong_served"]
        if panic and gap < GAP_GOAL:
            failed.append(f"{name}: learned {gap * 100:+.1f} points from the fixed curve (goal +3)")
        if report["scenario"] == BUNDLED_LINEUP_LEAK:
            if default_p is not None and learned_p["computes"] > default_p["computes"]:
                failed.append(f"{name}: learned computes {learned_p['computes']:,} > default's")
            if learned_p["wrong_served"] > LINEUP_WRONG_GOAL:
                failed.append(f"{name}: learned wrong served {learned_p['wrong_served']:.1%} > 12 %")
    return lines, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help="vix-ttl frontier --json outputs")
    parser.add_argument(
        "--learned",
        action="append",
        type=Path,
        default=[],
        help="a simulate --json report whose learned point replaces the frontier's (in order)",
    )
    args = parser.parse_args(argv)
    header = (
        f"{'scenario':<22} {'policy':<8} {'computes':>9} {'wrong':>7} {'calm':>7} {'panic':>7} "
        f"{'curve':>7} {'gap pts':>7}  dominated by (fixed)"
    )
    print(header)
    failures: list[str] = []
    for n, path in enumerate(args.reports):
        learned = learned_point(args.learned[n]) if n < len(args.learned) else None
        lines, failed = rows(json.loads(path.read_text()), learned)
        print("\n".join(lines))
        failures += failed
    print()
    print("\n".join(f"FAIL {f}" for f in failures) or "every goal reached")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
