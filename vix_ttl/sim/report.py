"""The reports of ``vix-ttl simulate`` and ``vix-ttl frontier``: as data, and as tables for people.

A report is what ``--json`` prints; it says its scenario under ``"scenario"``,
so its table is rendered from the report alone.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from vix_ttl.sim.scenario import Scenario
from vix_ttl.sim.simulate import StrategyResult, share

__all__ = ["frontier_report", "render_frontier", "render_simulation", "simulation_report", "when"]


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
        "seed": scenario.seed,
        "step_seconds": scenario.step,
        "simulated_latency_seconds": scenario.latency_steps * scenario.step,
    }


def _title(sc: dict[str, Any]) -> str:
    """The two lines that say what was simulated."""
    changes = sc["changes"]
    if len(changes) <= 10:
        phases = ", ".join(f"{status} from {when(t)}" for t, status in changes)
    else:  # a replayed feed: a line per row would be the file itself
        phases = f"{len(changes)} rows, panic for {when(sc['panic_seconds'])} in all"
    every = "/".join(f"{sc['change_every'][s]:g}" for s in ("normal", "warning", "panic"))
    truth = (
        "values change as the file's values do"
        if sc["truth_from_file"]
        else f"values change every {every} s (normal/warning/panic)"
    )
    return (
        f"{sc['name']}: {when(sc['duration_seconds'])} simulated ({phases})\n"
        f"{sc['rate']:,.0f} requests/s (hot key {sc['hot_share']:.0%}, {sc['keys']} other keys), "
        f"backend {sc['latency_seconds'] * 1000:g} ms "
        f"(simulated as {sc['simulated_latency_seconds'] * 1000:g} ms), "
        f"base TTL {sc['ttl']:g} s, window {sc['window_seconds']:g} s, "
        f"step {sc['step_seconds'] * 1000:g} ms, {truth}"
    )


def when(seconds: float) -> str:
    """A time as people say it: ``45 s``, ``5 min 31 s``, ``1 h 45 min`` (to the second)."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:g} s" if seconds != whole else f"{whole} s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h"] * bool(hours) + [f"{minutes} min"] * bool(minutes) + [f"{secs} s"] * bool(secs)
    return " ".join(parts)


def render_simulation(report: dict[str, Any]) -> str:
    """The report of ``vix-ttl simulate`` as a table for people."""
    lines = [
        _title(report["scenario"]),
        "",
        f"{'strategy':<24} {'computes':>10} {'in panic':>10} {'peak/s':>7} {'vs bypass':>10} "
        f"{'in panic':>9} {'hits':>10} {'oldest served normal/warning/panic':>36} {'stale':>6} "
        f"{'wait p50/p99/max':>22} {'wrong served (calm / panic)':>26}",
    ]
    for name, s in report["strategies"].items():
        oldest = " / ".join(f"{s['oldest_served_seconds'][k]:.2f} s" for k in ("normal", "warning", "panic"))
        vs = f"{s['share_of_bypass']:.1%}" if "share_of_bypass" in s else "-"
        vs_panic = f"{s['share_of_bypass_in_panic']:.1%}" if "share_of_bypass_in_panic" in s else "-"
        counts = f"{s['computes']:>10,} {s['computes_in_panic']:>10,} {s['peak_computes_per_second']:>7,}"
        wait = " / ".join(f"{s['caller_wait_seconds'][k] * 1000:g}" for k in ("p50", "p99", "max")) + " ms"
        in_panic = f"{s['wrong_served_in_panic']:.1%}" if s["calls_in_panic"] else "-"  # no panic call
        wrong = f"{s['wrong_served']:.1%} ({s['wrong_served_in_calm']:.1%} / {in_panic})"
        lines.append(
            f"{name:<24} {counts} {vs:>10} {vs_panic:>9} {s['cache_info']['hits']:>10,} {oldest:>36} "
            f"{s['staleness_violations']:>6} {wait:>22} {wrong:>26}"
        )
    lines += ["", "Mode timeline:"]
    lines += [
        f"  t={when(hop['at_seconds']):>13}  {hop['old']:>15} -> {hop['new']:<15} "
        f"panic ratio {hop['panic_ratio']:6.1%}  ({hop['trigger']})"
        for hop in report["timeline"]
    ] or ["  (no mode change)"]
    return "\n".join(lines)


def frontier_report(scenario: Scenario, frontier: dict[str, Any]) -> dict[str, Any]:
    """The report of ``vix-ttl frontier`` as data: *frontier* and its scenario, what ``--json`` prints."""
    return {"scenario": _scenario_summary(scenario), **frontier}


def render_frontier(report: dict[str, Any]) -> str:
    """The report of ``vix-ttl frontier`` as a table for people."""
    lines = [
        _title(report["scenario"]),
        "",
        f"{'point':<18} {'computes':>10} {'in panic':>10} {'wrong served':>13} {'in calm':>8} "
        f"{'in panic':>9}  dominated by",
    ]
    lines += [
        f"{p['name']:<18} {p['computes']:>10,} {p['computes_in_panic']:>10,} {p['wrong_served']:>13.1%} "
        f"{p['wrong_served_in_calm']:>8.1%} {p['wrong_served_in_panic']:>9.1%}  "
        f"{', '.join(p['dominated_by']) or '-'}"
        for p in report["points"]
    ]
    verdict = (
        f"vix_ttl default is dominated by {', '.join(report['dominated_by'])}"
        if report["dominated"]
        else "vix_ttl default is not dominated by any point"
    )
    return "\n".join([*lines, "", verdict])
