"""The ``vix-ttl`` command: ``simulate`` (the main job), ``frontier`` and ``demo``."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import queue
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from importlib import resources
from importlib.metadata import version
from multiprocessing import Manager
from pathlib import Path
from typing import Any

import structlog
from tqdm import tqdm

from vix_ttl.breaker import VIXCircuitBreaker
from vix_ttl.mode import Thresholds, Transition
from vix_ttl.sim.frontier import DEFAULT_TTLS, build_frontier, frontier_strategies, render_frontier
from vix_ttl.sim.scenario import BUILT_IN, MAX_SECONDS, Scenario, lineup_leak, load_scenario
from vix_ttl.sim.simulate import (
    DEFAULT_STRATEGIES,
    STRATEGIES,
    StrategyResult,
    check_strategy,
    share,
    simulate,
)
from vix_ttl.testing import FakeClock

EXIT_STALE = 1  # a value was served past its decided TTL: the run found a bug


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `vix-ttl simulate | head`: the reader has what it wanted
        sys.stderr.close()
        return 0


def _main(argv: Sequence[str] | None) -> int:
    parser, commands = _parser()
    args = parser.parse_args(argv)
    command = commands[args.command]  # its usage line goes with its errors
    # The command owns its process: logs go to stderr, the report to stdout.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    if args.command == "demo":
        if args.rate <= 0:
            command.error("--rate must be a positive number of requests per second")
        return demo(args.rate)
    if args.command in _SHIPPED:
        print(shipped(args.command), end="")
        return 0
    # Every setting is checked here, before any work: a mistake costs a line, not a run.
    try:
        scenario = _scenario(args)
        strategies = _strategies(args.strategies) if args.command == "simulate" else _ttls(args.ttls)
    except ValueError as exc:
        command.error(str(exc))
    if args.plot is not None:
        _check_plotting(command, args.plot)
    if args.command == "frontier":
        return frontier_command(scenario, strategies, args)
    results = run(scenario, strategies, workers=args.workers, progress=args.progress and sys.stderr.isatty())
    report = build_report(scenario, results)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    if args.plot is not None:
        from vix_ttl.sim.plot import plot  # noqa: PLC0415 - matplotlib is an optional extra

        plot(scenario, results, args.plot)
        print(f"\nplot written to {args.plot}", file=sys.stderr)
    return EXIT_STALE if report["acceptance"]["staleness_violations"] else 0


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command's parser, and each subcommand's (they say their own usage line with an error)."""
    parser = argparse.ArgumentParser(
        prog="vix-ttl",
        description="vix_ttl's command: the scenario simulator (simulate), freshness against load "
        "(frontier), the breaker's story (demo), and its Grafana dashboard and Prometheus alert rules.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('vix_ttl')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    traffic = argparse.ArgumentParser(add_help=False)
    _traffic_options(traffic)
    sim = commands.add_parser(
        "simulate",
        parents=[traffic],
        help="real vix_ttl code under simulated traffic, three strategies side by side",
        description="Drive the real @vix_cached and breaker with a simulated workload on a virtual clock "
        "and compare: bypass (the naive cache), breaker (coalescing off), breaker+coalesce.",
    )
    sim.add_argument(
        "--strategies",
        default=",".join(DEFAULT_STRATEGIES),
        help=f"comma-separated subset of {','.join(STRATEGIES)}, or fixed:SECONDS (default: the first three)",
    )
    sim.add_argument(
        "--workers",
        type=int,
        default=len(DEFAULT_STRATEGIES),
        help="processes, one strategy each (default 3; 1 runs them here, in turn)",
    )
    sim.add_argument("--json", action="store_true", help="print the report as JSON")
    sim.add_argument("--plot", type=Path, metavar="PNG", help="also draw the run (needs vix_ttl[plot])")
    sim.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    front = commands.add_parser(
        "frontier",
        parents=[traffic],
        help="freshness against load: vix_ttl beside fixed TTLs on the same traffic",
        description="Run the same traffic under fixed TTLs and under vix_ttl's policies (default and "
        "learned, with coalescing), and show backend computes against the share of calls served a "
        "value the truth had moved past.",
    )
    front.add_argument(
        "--ttls",
        default=",".join(f"{t:g}" for t in DEFAULT_TTLS),
        metavar="T1,T2,...",
        help=f"the fixed TTLs in seconds (default {','.join(f'{t:g}' for t in DEFAULT_TTLS)})",
    )
    front.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes, one point each (default: one per CPU)",
    )
    front.add_argument("--json", action="store_true", help="print the frontier as JSON")
    front.add_argument("--plot", type=Path, metavar="PNG", help="also draw it (needs vix_ttl[plot])")
    front.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    commands.add_parser(
        "dashboard",
        help="print the Grafana dashboard (JSON) for vix_ttl's Prometheus metrics",
        description="Print the Grafana dashboard (JSON) for vix_ttl's Prometheus metrics.",
    )
    commands.add_parser(
        "alert-rules",
        help="print the Prometheus alert rules (YAML) for vix_ttl",
        description="Print the Prometheus alert rules (YAML) for vix_ttl's metrics: load them in Prometheus.",
    )
    demo_parser = commands.add_parser(
        "demo",
        help="the breaker alone through the lineup-leak story",
        description="Walk one breaker through the lineup-leak story on a virtual clock, in a second, and "
        "print its mode changes and what a panic request gets along the way.",
    )
    demo_parser.add_argument("--rate", type=int, default=10, help="requests per second (default 10)")
    return parser, dict(commands.choices)


def _traffic_options(sim: argparse.ArgumentParser) -> None:
    """The options of a simulated workload, shared by ``simulate`` and ``frontier``."""
    sim.add_argument(
        "--scenario",
        default="lineup-leak",
        metavar="NAME|FILE",
        help=f"a bundled scenario ({', '.join(BUILT_IN)}), or a CSV or JSON file of timestamped "
        "statuses or observed values to replay (default: lineup-leak)",
    )
    sim.add_argument(
        "--change-every",
        default=DEFAULT_CHANGE_EVERY_FLAG,
        metavar="N,W,P",
        help="the truth: mean seconds between two changes of a key's value in normal, warning, panic "
        "(default 300,30,2)",
    )
    sim.add_argument("--calm-minutes", type=float, help="lineup-leak: calm before (default 30)")
    sim.add_argument("--panic-minutes", type=float, help="lineup-leak: panic (default 45)")
    sim.add_argument("--after-minutes", type=float, help="lineup-leak: calm after (default 30)")
    sim.add_argument(
        "--end",
        type=float,
        metavar="SECONDS",
        help="a replayed file: when the run ends, in seconds from its first row (default: 1 s after "
        "its last row, whose status holds until then)",
    )
    sim.add_argument("--rate", type=float, default=1000, help="requests per second (default 1000)")
    sim.add_argument("--hot-share", type=float, default=0.95, help="share of the hot key (default 0.95)")
    sim.add_argument("--keys", type=int, default=50, help="other keys sharing the rest (default 50)")
    sim.add_argument("--latency-ms", type=float, default=50, help="backend computation (default 50)")
    sim.add_argument("--ttl", type=float, default=60, help="base TTL in seconds (default 60)")
    sim.add_argument("--window", type=float, default=1800, help="breaker window seconds (default 1800)")
    sim.add_argument("--bucket", type=float, default=1, help="breaker bucket seconds (default 1)")
    sim.add_argument("--min-samples", type=int, default=20, help="breaker min_samples (default 20)")
    sim.add_argument(
        "--thresholds",
        default="0.5,0.3,0.8,0.6",
        metavar="EHV,XHV,ECO,XCO",
        help="enter/exit high_volatility, enter/exit circuit_open (default 0.5,0.3,0.8,0.6)",
    )
    sim.add_argument("--seed", type=int, default=1, help="traffic random seed (default 1)")
    sim.add_argument(
        "--processes",
        type=int,
        default=1,
        help="a fleet: this many copies of the function, each with its own in-flight sharing, over one "
        "shared store with fleet-wide leases, like workers over one Redis (default 1: one process, "
        "its own in-memory store)",
    )
    sim.add_argument(
        "--step",
        type=float,
        default=1 / 32,
        help="simulation time step, seconds (default 1/32: binary fractions keep time exact)",
    )


# The flag of each setting, for errors raised where the setting has another name.
_FLAGS = {
    "rate": "--rate",
    "hot_share": "--hot-share",
    "keys": "--keys",
    "ttl": "--ttl",
    "step": "--step",
    "min_samples": "--min-samples",
    "processes": "--processes",
    "change_every": "--change-every",
    "window_seconds": "--window",
    "bucket_seconds": "--bucket",
}
# A setting's name as a word of its own: not part of a path, a file or a quoted name.
_SETTING = re.compile(rf"(?<![\w/.'\"-])(?:scenario )?({'|'.join(_FLAGS)})(?![\w/.'\"-])")
_LINEUP_LEAK = ("calm_minutes", "panic_minutes", "after_minutes")
DEFAULT_CHANGE_EVERY_FLAG = "300,30,2"


def _scenario(args: argparse.Namespace) -> Scenario:
    """The scenario the flags describe, every setting checked, errors naming the flag."""
    try:
        enter_hv, exit_hv, enter_co, exit_co = (float(x) for x in args.thresholds.split(","))
    except ValueError:
        raise ValueError(
            f"--thresholds needs four numbers like 0.5,0.3,0.8,0.6, got {args.thresholds!r}"
        ) from None
    try:
        thresholds = Thresholds(enter_hv, exit_hv, enter_co, exit_co)
    except ValueError as exc:
        raise ValueError(f"--thresholds {args.thresholds}: {exc}") from None
    if args.workers < 1:
        raise ValueError("--workers must be >= 1")
    if not (math.isfinite(args.latency_ms) and 0 <= args.latency_ms <= 600_000):
        raise ValueError(f"--latency-ms must be a finite number in [0, 600000], got {args.latency_ms:g}")
    if args.processes > 1:
        try:
            import aiocache  # noqa: F401, PLC0415 - a fleet's store is aiocache's memory cache
        except ImportError:
            raise ValueError(
                "--processes needs the aiocache extra: pip install 'vix_ttl[aiocache]'"
            ) from None
    try:
        normal, warning, panic = (float(x) for x in args.change_every.split(","))
    except ValueError:
        raise ValueError(
            f"--change-every needs three numbers of seconds like 300,30,2, got {args.change_every!r}"
        ) from None
    try:
        # The breaker each strategy builds, built once here: its errors before the run.
        VIXCircuitBreaker(
            window_seconds=args.window,
            bucket_seconds=args.bucket,
            min_samples=args.min_samples,
            thresholds=thresholds,
        )
        return _built(args, thresholds, {"normal": normal, "warning": warning, "panic": panic})
    except (TypeError, ValueError) as exc:
        raise ValueError(_flagged(str(exc))) from None


def _flagged(message: str) -> str:
    """*message* with the setting it names said as its flag (``--rate``, not ``scenario rate``)."""
    return _SETTING.sub(lambda found: _FLAGS[found.group(1)], message)


def _built(args: argparse.Namespace, thresholds: Thresholds, change_every: dict[str, float]) -> Scenario:
    settings: dict[str, Any] = {
        "rate": args.rate,
        "hot_share": args.hot_share,
        "keys": args.keys,
        "latency": args.latency_ms / 1000,
        "ttl": args.ttl,
        "window_seconds": args.window,
        "bucket_seconds": args.bucket,
        "min_samples": args.min_samples,
        "seed": args.seed,
        "step": args.step,
        "processes": args.processes,
        "thresholds": thresholds,
        "change_every": change_every,
    }
    minutes = {name: getattr(args, name) for name in _LINEUP_LEAK if getattr(args, name) is not None}
    if args.scenario != "lineup-leak" and minutes:
        raise ValueError(
            f"--{next(iter(minutes)).replace('_', '-')} applies to the lineup-leak scenario only"
        )
    if args.end is not None and (args.scenario in BUILT_IN):
        raise ValueError(f"--end applies to a replayed file only; {args.scenario} has its own length")
    if args.scenario == "lineup-leak":
        for name, value in minutes.items():
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value:g}")
        total = sum({"calm_minutes": 30, "panic_minutes": 45, "after_minutes": 30, **minutes}.values())
        if not 0 < total * 60 <= MAX_SECONDS:
            raise ValueError(
                f"--calm-minutes, --panic-minutes and --after-minutes add up to {total:g} min: "
                f"the run must last more than 0 and at most a week"
            )
        return lineup_leak(**minutes, **settings)
    if args.scenario in BUILT_IN:
        return BUILT_IN[args.scenario](**settings)
    path = Path(args.scenario)
    if not path.is_file():
        raise ValueError(
            f"--scenario {args.scenario!r} is neither a bundled scenario ({', '.join(BUILT_IN)}) "
            f"nor a file to replay"
        )
    scenario = load_scenario(path, end=args.end, **settings)
    if scenario.truth_changes is not None and args.change_every != DEFAULT_CHANGE_EVERY_FLAG:
        raise ValueError(
            "--change-every does not apply to a file of observed values: its values are the truth"
        )
    return scenario


def _strategies(text: str) -> list[str]:
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    if not chosen:
        raise ValueError(f"--strategies takes a comma-separated subset of {', '.join(STRATEGIES)}")
    for strategy in chosen:
        try:
            check_strategy(strategy)
        except ValueError as exc:
            raise ValueError(f"--strategies: {exc}") from None
    return chosen


def _ttls(text: str) -> list[str]:
    """The strategies of a frontier over the fixed TTLs in *text*."""
    try:
        ttls = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        ttls = []
    if not ttls or not all(math.isfinite(t) and t >= 0 for t in ttls):
        raise ValueError(f"--ttls needs comma-separated seconds >= 0 like 0,1,5,60, got {text!r}")
    return frontier_strategies(sorted(set(ttls)))


def frontier_command(scenario: Scenario, strategies: list[str], args: argparse.Namespace) -> int:
    """``vix-ttl frontier``: run every point, then print (or --json) and draw the frontier."""
    results = run(scenario, strategies, workers=args.workers, progress=args.progress and sys.stderr.isatty())
    frontier = build_frontier(results, scenario.ttl)
    if args.json:
        print(json.dumps({"scenario": _scenario_summary(scenario), **frontier}, indent=2))
    else:
        print(render_frontier(frontier, _title(_scenario_summary(scenario))))
    if args.plot is not None:
        from vix_ttl.sim.plot import plot_frontier  # noqa: PLC0415 - matplotlib is an optional extra

        plot_frontier(scenario, frontier, args.plot)
        print(f"\nplot written to {args.plot}", file=sys.stderr)
    return 0


_PICTURES = {"png", "jpg", "jpeg", "pdf", "svg", "eps", "ps", "tif", "tiff", "webp"}
"""What --plot writes: the formats matplotlib draws with no tool of its own (pgf needs LaTeX)."""


def _check_plotting(parser: argparse.ArgumentParser, path: Path) -> None:
    """Whether the picture can be drawn to *path*: said before the run, not after it."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    except ImportError:
        parser.error("--plot needs matplotlib: pip install 'vix_ttl[plot]'")
    formats = set(FigureCanvasAgg.get_supported_filetypes()) & _PICTURES
    if path.suffix.lower().lstrip(".") not in formats or path.is_dir():
        parser.error(
            f"--plot {str(path)!r}: name a picture file ending in one of .{', .'.join(sorted(formats))}"
        )
    folder = path.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        parser.error(f"--plot {str(path)!r}: the folder {str(folder)!r} does not exist or cannot be written")


def run(
    scenario: Scenario, strategies: Sequence[str], *, workers: int = 3, progress: bool = False
) -> dict[str, StrategyResult]:
    """Run *strategies* on *scenario*, each in a process of its own when *workers* > 1."""
    bar = tqdm(
        total=round(scenario.duration) * len(strategies),
        unit="sim-s",
        disable=not progress,
        desc="simulating",
        file=sys.stderr,
        leave=False,
    )
    done: dict[str, float] = dict.fromkeys(strategies, 0.0)

    def advance(strategy: str, seconds: float) -> None:
        bar.update(round(seconds - done[strategy]))
        done[strategy] = seconds

    try:
        if workers == 1:
            return {s: simulate(scenario, s, lambda t, s=s: advance(s, t)) for s in strategies}  # type: ignore[misc]
        with Manager() as manager, ProcessPoolExecutor(max_workers=min(workers, len(strategies))) as pool:
            updates = manager.Queue()
            futures = {s: pool.submit(_simulate_quietly, scenario, s, updates) for s in strategies}
            try:
                while not all(f.done() for f in futures.values()):
                    with contextlib.suppress(queue.Empty):
                        advance(*updates.get(timeout=0.2))
            except KeyboardInterrupt:
                pool.shutdown(wait=False, cancel_futures=True)  # the workers got the Ctrl-C too
                raise
            return {s: f.result() for s, f in futures.items()}
    finally:
        bar.close()


def _simulate_quietly(scenario: Scenario, strategy: str, updates: Any) -> StrategyResult:
    """A worker process: its transitions are in the result, not in the log."""
    structlog.configure(processors=[_drop])
    return simulate(scenario, strategy, lambda seconds: updates.put((strategy, seconds)))


def _drop(*_: Any) -> Any:
    raise structlog.DropEvent


def build_report(scenario: Scenario, results: dict[str, StrategyResult]) -> dict[str, Any]:
    """The report as data: what --json prints."""
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
        phases = ", ".join(f"{status} from {_when(t)}" for t, status in changes)
    else:  # a replayed feed: a line per row would be the file itself
        phases = f"{len(changes)} rows, panic for {_when(sc['panic_seconds'])} in all"
    every = "/".join(f"{sc['change_every'][s]:g}" for s in ("normal", "warning", "panic"))
    truth = (
        "values change as the file's values do"
        if sc["truth_from_file"]
        else f"values change every {every} s (normal/warning/panic)"
    )
    return (
        f"{sc['name']}: {_when(sc['duration_seconds'])} simulated ({phases})\n"
        f"{sc['rate']:,.0f} requests/s (hot key {sc['hot_share']:.0%}, {sc['keys']} other keys), "
        f"backend {sc['latency_seconds'] * 1000:g} ms "
        f"(simulated as {sc['simulated_latency_seconds'] * 1000:g} ms), "
        f"base TTL {sc['ttl']:g} s, window {sc['window_seconds']:g} s, "
        f"step {sc['step_seconds'] * 1000:g} ms, {truth}"
    )


def _when(seconds: float) -> str:
    """A time as people say it: ``45 s``, ``5 min 31 s``, ``1 h 45 min`` (to the second)."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:g} s" if seconds != whole else f"{whole} s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h"] * bool(hours) + [f"{minutes} min"] * bool(minutes) + [f"{secs} s"] * bool(secs)
    return " ".join(parts)


def render(report: dict[str, Any]) -> str:
    """The report as a table for people."""
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
        f"  t={_when(hop['at_seconds']):>13}  {hop['old']:>15} -> {hop['new']:<15} "
        f"panic ratio {hop['panic_ratio']:6.1%}  ({hop['trigger']})"
        for hop in report["timeline"]
    ] or ["  (no mode change)"]
    return "\n".join(lines)


_SHIPPED = {"dashboard": "grafana-dashboard.json", "alert-rules": "alert-rules.yml"}


def shipped(command: str) -> str:
    """The text of a file shipped in ``vix_ttl/observability`` (``dashboard``, ``alert-rules``)."""
    return resources.files("vix_ttl.observability").joinpath(_SHIPPED[command]).read_text()


def demo(rate: int = 10) -> int:
    """Walk a breaker through the lineup-leak story on a virtual clock and print what it does."""
    clock = FakeClock()
    breaker = VIXCircuitBreaker(name="lineup-leak", clock=clock)
    calm, panic, after = 30 * 60, 45 * 60, 30 * 60

    def show(hop: Transition) -> None:
        print(
            f"  t={_when(hop.at):>13}  {hop.old.value:>15} -> {hop.new.value:<15} "
            f"panic ratio {hop.panic_ratio:6.1%}  ({hop.trigger})"
        )

    breaker.subscribe(show)
    print(f"30 min calm, 45 min of panic, 30 min calm; {rate} requests/s; 30 min window.\n")
    print("Mode changes:")
    checkpoints = {
        10 * 60: "calm",
        calm + 10 * 60: "10 min into the panic",
        calm + 30 * 60: "30 min into the panic",
        calm + panic + 25 * 60: "after the panic",
    }
    seen: dict[str, str] = {}
    for tick in range((calm + panic + after) * rate):
        clock.set(tick / rate)
        breaker.record("panic" if calm <= clock() < calm + panic else "normal")
        second = tick // rate
        if tick % rate == 0 and second in checkpoints:
            decision = breaker.decide("panic", 0)
            seen[checkpoints[second]] = (
                f"mode {decision.mode.value}, a panic request gets TTL {decision.ttl:g} s "
                f"({decision.strategy.value})"
            )
    print("\nWhat a panic request gets:")
    for moment, line in seen.items():
        print(f"  {moment:>22}: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
