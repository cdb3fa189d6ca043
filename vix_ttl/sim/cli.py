"""The ``vix-ttl`` command: its arguments, checked before any work, and what each command runs.

``simulate`` (the main job) and ``frontier`` run the simulator, their reports
``vix_ttl.sim.report``'s; ``demo`` walks one breaker through the story;
``dashboard`` and ``alert-rules`` print the files shipped in ``vix_ttl.observability``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import math
import os
import re
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import Any, NoReturn

from vix_ttl._checks import missing_extra
from vix_ttl.breaker import VIXCircuitBreaker
from vix_ttl.mode import Thresholds
from vix_ttl.sim.demo import demo
from vix_ttl.sim.frontier import DEFAULT_TTLS, build_frontier, frontier_strategies
from vix_ttl.sim.report import frontier_report, render_frontier, render_simulation, simulation_report
from vix_ttl.sim.scenario import (
    BUILT_IN,
    DEFAULT_TOLERANCE,
    MAX_SECONDS,
    Scenario,
    lineup_leak,
    load_scenario,
)
from vix_ttl.sim.simulate import DEFAULT_STRATEGIES, STRATEGIES, check_strategy, run

EXIT_STALE = 1  # a value was served past its decided TTL: the run found a bug
MAX_DEMO_RATE = 10_000


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `vix-ttl simulate | head`: the reader has what it wanted
        sys.stderr.close()
        return 0


def _log_to_stderr(shown: frozenset[str] = frozenset()) -> None:
    """The command owns its process, so it configures logging: vix_ttl's events, every mode
    change included, go to stderr; the report goes to stdout. The events *shown* by the
    command itself are not logged: on a terminal, stdout and stderr are one screen."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)-8s] %(message)s", "%Y-%m-%d %H:%M:%S"))
    if shown:
        handler.addFilter(lambda record: getattr(record, "event", None) not in shown)
    logger = logging.getLogger("vix_ttl")
    logger.handlers[:] = [handler]  # main() run twice in one process prints each line once
    logger.setLevel(logging.INFO)
    logger.propagate = False


class _Parser(argparse.ArgumentParser):
    """A parser whose error is one line on stderr, ``vix-ttl simulate: error: ...``, and exit code 2.

    argparse prints its usage block above the error; ``--help`` shows it when asked.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Its options, its parents' included: what a mistyped option may have meant.
        self.options = [option for parent in kwargs.get("parents", ()) for option in parent.options]
        super().__init__(*args, **kwargs)

    def add_argument(self, *name_or_flags: str, **kwargs: Any) -> argparse.Action:
        self.options += [flag for flag in name_or_flags if flag.startswith("-")]
        return super().add_argument(*name_or_flags, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's help with its lines broken between words only, never inside a name such as
    lineup-leak or breaker+coalesce+learned (argparse breaks at hyphens and inside long words)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False, break_long_words=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return textwrap.fill(
            " ".join(text.split()),
            width,
            initial_indent=indent,
            subsequent_indent=indent,
            break_on_hyphens=False,
            break_long_words=False,
        )


def _main(argv: Sequence[str] | None) -> int:
    parser, commands = _parser()
    args, extra = parser.parse_known_args(argv)
    command = commands[args.command]  # its name goes with its errors
    if extra:
        command.error(f"unrecognized arguments: {' '.join(extra)}{_did_you_mean(command, extra)}")
    # The demo prints each mode change itself, on the breaker's virtual clock.
    _log_to_stderr(frozenset({"breaker_mode_changed"}) if args.command == "demo" else frozenset())
    if args.command == "demo":
        if not 1 <= args.rate <= MAX_DEMO_RATE:
            # The demo records every request: about 600,000 a second (measured), and 10,000/s for
            # its 1 h 45 min is 63 million, about two minutes.
            command.error(
                f"--rate must be a whole number in [1, {MAX_DEMO_RATE}] requests per second (the demo "
                f"records each request: {MAX_DEMO_RATE:,}/s is already 63 million, minutes of work), "
                f"got {args.rate}"
            )
        return demo(args.rate)
    if args.command in _SHIPPED:
        print(shipped(args.command), end="")
        return 0
    try:
        import tqdm  # noqa: F401, PLC0415 - run's progress bar, the sim extra, which the commands above need not
    except ImportError as exc:
        command.error(str(missing_extra(args.command, "sim", exc)))
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
    report = simulation_report(scenario, results)
    print(json.dumps(report, indent=2) if args.json else render_simulation(report))
    if args.plot is not None:
        from vix_ttl.sim.plot import plot  # noqa: PLC0415 - matplotlib is an optional extra

        plot(scenario, results, args.plot)
        print(f"\nplot written to {args.plot}", file=sys.stderr)
    return EXIT_STALE if report["acceptance"]["staleness_violations"] else 0


def _did_you_mean(parser: argparse.ArgumentParser, extra: list[str]) -> str:
    """The options *parser* has that the first unknown option in *extra* may have meant."""
    unknown = next((arg.split("=", 1)[0] for arg in extra if arg.startswith("--")), None)
    if unknown is None:
        return ""
    options = parser.options if isinstance(parser, _Parser) else []
    near = [o for o in options if o.startswith(unknown)] or difflib.get_close_matches(unknown, options, 3)
    return f" ({unknown}: did you mean {' or '.join(near[:3])}?)" if near else ""


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command's parser, and each subcommand's (each names itself in its errors)."""
    # No abbreviations: --rat is not --rate, --pl not --plot; a typo is an error, not a guess.
    parser = _Parser(
        prog="vix-ttl",
        allow_abbrev=False,
        formatter_class=_HelpFormatter,
        description="vix_ttl's command: the scenario simulator (simulate), freshness against load "
        "(frontier), the breaker's story (demo), and its Grafana dashboard and Prometheus alert rules.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('vix_ttl')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    traffic = _Parser(add_help=False, allow_abbrev=False, formatter_class=_HelpFormatter)
    _traffic_options(traffic)
    sim = commands.add_parser(
        "simulate",
        parents=[traffic],
        allow_abbrev=False,
        formatter_class=_HelpFormatter,
        help="real vix_ttl code under simulated traffic, three strategies side by side",
        description="Drive the real @vix_cached and breaker with a simulated workload on a virtual clock "
        "and compare: bypass (the naive cache), breaker (coalescing off), breaker+coalesce.",
    )
    sim.add_argument(
        "--strategies",
        default=",".join(DEFAULT_STRATEGIES),
        help=f"comma-separated subset of {', '.join(STRATEGIES)}, or fixed:SECONDS "
        "(default: the first three)",
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
        allow_abbrev=False,
        formatter_class=_HelpFormatter,
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
        allow_abbrev=False,
        formatter_class=_HelpFormatter,
        help="print the Grafana dashboard (JSON) for vix_ttl's Prometheus metrics",
        description="Print the Grafana dashboard (JSON) for vix_ttl's Prometheus metrics.",
    )
    commands.add_parser(
        "alert-rules",
        allow_abbrev=False,
        formatter_class=_HelpFormatter,
        help="print the Prometheus alert rules (YAML) for vix_ttl",
        description="Print the Prometheus alert rules (YAML) for vix_ttl's metrics: load them in Prometheus.",
    )
    demo_parser = commands.add_parser(
        "demo",
        allow_abbrev=False,
        formatter_class=_HelpFormatter,
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
    sim.add_argument(
        "--tolerance",
        type=float,
        metavar="FRACTION",
        help="a replayed file of observed values: the relative move of a value that changes the "
        f"truth (default {DEFAULT_TOLERANCE:g}, i.e. {DEFAULT_TOLERANCE * 100:g} %%: one price tick "
        "of 0.01 on odds of 2.0; a smaller move is the feed's noise, not a new price, and smaller "
        "moves add up until they count; 0: every change counts)",
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
    _check_scenario_name(args.scenario)  # first: a typo is said as such, not as a misplaced option
    minutes = {name: getattr(args, name) for name in _LINEUP_LEAK if getattr(args, name) is not None}
    if args.scenario != "lineup-leak" and minutes:
        raise ValueError(
            f"--{next(iter(minutes)).replace('_', '-')} applies to the lineup-leak scenario only"
        )
    if args.end is not None and (args.scenario in BUILT_IN):
        raise ValueError(f"--end applies to a replayed file only; {args.scenario} has its own length")
    if args.tolerance is not None and not (math.isfinite(args.tolerance) and args.tolerance >= 0):
        raise ValueError(
            f"--tolerance must be a finite number >= 0, a fraction (0.005 is 0.5 %), got {args.tolerance:g}"
        )
    if args.tolerance is not None and args.scenario in BUILT_IN:
        raise ValueError(f"--tolerance applies to a file of observed values only; {args.scenario} has none")
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
    tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    scenario = load_scenario(Path(args.scenario), end=args.end, tolerance=tolerance, **settings)
    if scenario.truth_changes is not None and args.change_every != DEFAULT_CHANGE_EVERY_FLAG:
        raise ValueError(
            "--change-every does not apply to a file of observed values: its values are the truth"
        )
    if scenario.truth_changes is None and args.tolerance is not None:
        raise ValueError(
            f"--tolerance applies to a file of observed values only; {Path(args.scenario).name} has "
            "statuses, and --change-every says when values change"
        )
    return scenario


def _check_scenario_name(name: str) -> None:
    """*name* is a bundled scenario or a file to replay; otherwise say what there is."""
    if name in BUILT_IN or Path(name).is_file():
        return
    bundled = ", ".join(BUILT_IN)
    if Path(name).is_dir():
        raise ValueError(
            f"--scenario {name!r} is a directory: name a CSV or JSON file in it, or a bundled scenario "
            f"({bundled})"
        )
    near = difflib.get_close_matches(name, BUILT_IN, 1)
    raise ValueError(
        f"--scenario {name!r} is unknown: not a bundled scenario ({bundled}), nor a CSV or JSON file "
        f"to replay" + (f" (did you mean {near[0]}?)" if near else "")
    )


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
    report = frontier_report(scenario, frontier)
    print(json.dumps(report, indent=2) if args.json else render_frontier(report))
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
    if path.is_dir():
        parser.error(
            f"--plot {str(path)!r} is a directory: name a picture file, such as {str(path / 'run.png')!r}"
        )
    formats = set(FigureCanvasAgg.get_supported_filetypes()) & _PICTURES
    if path.suffix.lower().lstrip(".") not in formats:
        parser.error(
            f"--plot {str(path)!r}: name a picture file ending in one of .{', .'.join(sorted(formats))}"
        )
    folder = path.parent
    if not folder.is_dir():
        parser.error(f"--plot {str(path)!r}: the folder {str(folder)!r} does not exist")
    try:
        # Written, not asked: os.access answers yes to root everywhere, and knows nothing of
        # read-only mounts or of a folder such as /proc that takes no new file.
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".vix-ttl-", suffix=path.suffix):
            pass
    except OSError as exc:
        parser.error(f"--plot {str(path)!r}: cannot write in the folder {str(folder)!r} ({exc.strerror})")
    if path.exists():
        try:
            with path.open("ab"):  # opened as it will be replaced, not changed
                pass
        except OSError as exc:
            parser.error(f"--plot {str(path)!r}: cannot replace the file there ({exc.strerror})")


_SHIPPED = {"dashboard": "grafana-dashboard.json", "alert-rules": "alert-rules.yml"}


def shipped(command: str) -> str:
    """The text of a file shipped in ``vix_ttl/observability`` (``dashboard``, ``alert-rules``)."""
    return resources.files("vix_ttl.observability").joinpath(_SHIPPED[command]).read_text()


if __name__ == "__main__":
    sys.exit(main())
