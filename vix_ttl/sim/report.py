"""The reports of ``vix-ttl simulate`` and ``vix-ttl frontier``: as data, and as tables for people.

A report is what ``--json`` prints; it says its scenario under ``"scenario"``,
so its table is rendered from the report alone.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import asdict
from typing import Any

from vix_ttl.sim.scenario import Scenario
from vix_ttl.sim.simulate import StrategyResult, share

__all__ = [
    "frontier_report",
    "rate",
    "ratio",
    "render_frontier",
    "render_simulation",
    "simulation_report",
    "when",
]


def simulation_report(scenario: Scenario, results: dict[str, StrategyResult]) -> dict[str, Any]:
    """The report of ``vix-ttl simulate`` as data: what its ``--json`` prints."""
    naive = results.get("bypass")
    strategies = {}
    for name, result in results.items():
        summary = result.summary()
        if naive is not None:
            summary["share_of_bypass"] = round(share(result.computes, naive.computes), 4)
            summary["share_of_bypass_in_panic"] = round(
                share(result.computes_in_panic, naive.computes_in_panic), 4
            )
        strategies[name] = summary
    # Every strategy's breaker sees the same statuses: their timelines are one timeline.
    timeline_of = next(iter(results.values()), None)
    return {
        "scenario": _scenario_summary(scenario),
        "strategies": strategies,
        "timeline": timeline_of.transitions if timeline_of is not None else [],
        "acceptance": {
            "staleness_violations": sum(r.staleness_violations for r in results.values()),
            **{
                f"{name}_share_of_bypass_in_panic": s["share_of_bypass_in_panic"]
                for name, s in strategies.items()
                if "share_of_bypass_in_panic" in s and name != "bypass"
            },
        },
    }


def _scenario_summary(scenario: Scenario) -> dict[str, Any]:
    """What a report says of its scenario."""
    return {
        "name": scenario.name,
        "duration_seconds": scenario.duration,
        "panic_seconds": scenario.panic_seconds,
        "changes": [list(change) for change in scenario.changes],
        "rate": scenario.rate,
        "hot_share": scenario.hot_share,
        "keys": scenario.keys,
        "latency_seconds": scenario.latency,
        "ttl": scenario.ttl,
        "window_seconds": scenario.window_seconds,
        "min_samples": scenario.min_samples,
        "thresholds": asdict(scenario.thresholds),
        "change_every": scenario.change_every,
        "truth_from_file": scenario.truth_changes is not None,
        "truth_tolerance": scenario.truth_tolerance,
        "seed": scenario.seed,
        "step_seconds": scenario.step,
        "simulated_latency_seconds": scenario.latency_steps * scenario.step,
    }


def _title(sc: dict[str, Any]) -> str:
    """The lines that say what was simulated, wrapped to fit 100 columns."""
    changes = sc["changes"]
    if len(changes) <= 10:
        phases = ", ".join(f"{status} from {when(t)}" for t, status in changes)
    else:  # a replayed feed: a line per row would be the file itself
        phases = f"{len(changes)} rows, panic for {when(sc['panic_seconds'])} in all"
    every = "/".join(f"{sc['change_every'][s]:g}" for s in ("normal", "warning", "panic"))
    tolerance = sc.get("truth_tolerance") or 0  # a report of 0.2 has none: every change counted
    truth = (
        "values change as the file's values do"
        + (f", by more than {tolerance * 100:g}%" if tolerance else "")
        if sc["truth_from_file"]
        else f"values change every {every} s (normal/warning/panic)"
    )
    what = f"{sc['name']}: {when(sc['duration_seconds'])} simulated ({phases})"
    how = (
        f"{rate(sc['rate'])} requests/s (hot key {sc['hot_share']:.0%}, {sc['keys']} other keys), "
        f"backend {sc['latency_seconds'] * 1000:g} ms "
        f"(simulated as {sc['simulated_latency_seconds'] * 1000:g} ms), "
        f"base TTL {sc['ttl']:g} s, window {sc['window_seconds']:g} s, "
        f"step {sc['step_seconds'] * 1000:g} ms, {truth}"
    )
    return "\n".join(textwrap.fill(line, WIDTH, subsequent_indent="  ") for line in (what, how))


def rate(per_second: float) -> str:
    """A rate as given: ``1,000``, ``0.5``, ``1,234.5`` (not rounded to a whole number)."""
    return f"{per_second:,.0f}" if per_second == int(per_second) else f"{per_second:,}"


def ratio(hop: dict[str, Any]) -> str:
    """The panic ratio of a mode change, as a percentage never on the wrong side of its threshold.

    A mode is left when the ratio is below its exit threshold: 59.98 % rounds to 60.0 %,
    which reads as the threshold, so a recovery is rounded down (59.9 %). A mode is entered
    at or above its threshold: rounded as usual.
    """
    percent = hop["panic_ratio"] * 100
    if hop["trigger"] == "recovery":
        percent = math.floor(round(percent * 10, 6)) / 10  # round(): 57.0 stays 57.0, not 56.9
    return f"{percent:5.1f}%"


def when(seconds: float) -> str:
    """A time as people say it: ``45 s``, ``5 min 31 s``, ``1 h 45 min`` (to the second)."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:g} s" if seconds != whole else f"{whole} s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h"] * bool(hours) + [f"{minutes} min"] * bool(minutes) + [f"{secs} s"] * bool(secs)
    return " ".join(parts)


WIDTH = 100
"""The columns a report's table fits in."""
NONE = "\u2014"
"""A cell with no meaning in the run (an em dash): the share in panic of a run with no panic."""


def render_simulation(report: dict[str, Any]) -> str:
    """The report of ``vix-ttl simulate`` as tables for people, each within 100 columns."""
    strategies = report["strategies"]
    statuses = {status for _, status in report["scenario"]["changes"]}
    load, callers, cache = [], [], []
    for name, s in strategies.items():
        panic = s["calls_in_panic"] > 0
        calm = s["requests"] > s["calls_in_panic"]
        load.append(
            [
                name,
                f"{s['computes']:,}",
                f"{s['computes_in_panic']:,}" if panic else NONE,
                f"{s['peak_computes_per_second']:,}",
                _share(s, "share_of_bypass", _bypass(strategies, "computes")),
                _share(s, "share_of_bypass_in_panic", _bypass(strategies, "computes_in_panic")),
            ]
        )
        wait = "/".join(f"{s['caller_wait_seconds'][k] * 1000:g}" for k in ("p50", "p99", "max"))
        callers.append(
            [
                name,
                f"{s['staleness_violations']:,}",
                f"{wait} ms",
                f"{s['wrong_served']:.1%}",
                f"{s['wrong_served_in_calm']:.1%}" if calm else NONE,
                f"{s['wrong_served_in_panic']:.1%}" if panic else NONE,
            ]
        )
        oldest = s["oldest_served_seconds"]
        cache.append(
            [
                name,
                f"{s['cache_info']['hits']:,}",
                *(f"{oldest[k]:.2f} s" if k in statuses else NONE for k in ("normal", "warning", "panic")),
            ]
        )
    lines = [_title(report["scenario"]), ""]
    lines += ["Backend load:"]
    lines += _table(
        ["strategy", "computes", "computes in panic", "peak/s", "vs bypass", "panic vs bypass"], load
    )
    lines += ["", "Served to callers:"]
    lines += _table(
        ["strategy", "past TTL", "wait p50/p99/max", "wrong served", "wrong in calm", "wrong in panic"],
        callers,
    )
    lines += ["", "Cache:"]
    lines += _table(["strategy", "hits", "oldest in normal", "oldest in warning", "oldest in panic"], cache)
    lines += ["", "Mode timeline:"]
    lines += [
        f"  t={when(hop['at_seconds']):>13}  {hop['old']:>15} -> {hop['new']:<15} "
        f"panic ratio {ratio(hop)}  ({hop['trigger']})"
        for hop in report["timeline"]
    ] or ["  (no mode change)"]
    return "\n".join(lines)


def _bypass(strategies: dict[str, Any], field: str) -> int:
    """What the bypass strategy counted in *field*, 0 when it did not run."""
    return int(strategies["bypass"][field]) if "bypass" in strategies else 0


def _share(summary: dict[str, Any], field: str, of: int) -> str:
    """A share of the bypass strategy's count *of*, or no share when there is nothing to share."""
    return f"{summary[field]:.1%}" if field in summary and of else NONE


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """*rows* under *headers*: the first column left-aligned, the others right-aligned, each as
    wide as its widest cell, two spaces apart."""
    align = "l" + "r" * (len(headers) - 1)
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    return [
        "  ".join(
            cell.ljust(width) if side == "l" else cell.rjust(width)
            for cell, width, side in zip(row, widths, align, strict=True)
        ).rstrip()
        for row in (headers, *rows)
    ]


def frontier_report(scenario: Scenario, frontier: dict[str, Any]) -> dict[str, Any]:
    """The report of ``vix-ttl frontier`` as data: *frontier* and its scenario, what ``--json`` prints."""
    return {"scenario": _scenario_summary(scenario), **frontier}


def render_frontier(report: dict[str, Any]) -> str:
    """The report of ``vix-ttl frontier`` as a table for people, within 100 columns, then the
    points another point dominates."""
    panic = report["scenario"]["panic_seconds"] > 0
    rows = [
        [
            p["name"],
            f"{p['computes']:,}",
            f"{p['computes_in_panic']:,}" if panic else NONE,
            f"{p['wrong_served']:.1%}",
            f"{p['wrong_served_in_calm']:.1%}",
            f"{p['wrong_served_in_panic']:.1%}" if panic else NONE,
        ]
        for p in report["points"]
    ]
    headers = ["point", "computes", "computes in panic", "wrong served", "wrong in calm", "wrong in panic"]
    dominated = [
        f"{p['name']} (by {', '.join(p['dominated_by'])})" for p in report["points"] if p["dominated_by"]
    ]
    verdict = (
        f"vix_ttl default is dominated by {', '.join(report['dominated_by'])}"
        if report["dominated"]
        else "vix_ttl default is not dominated by any point"
    )
    return "\n".join(
        [
            _title(report["scenario"]),
            "",
            *_table(headers, rows),
            "",
            textwrap.fill(f"Dominated: {'; '.join(dominated) or 'none'}", WIDTH, subsequent_indent="  "),
            textwrap.fill(verdict, WIDTH, subsequent_indent="  "),
        ]
    )
