from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vix_ttl.sim.cli import main
from vix_ttl.sim.simulate import STRATEGIES

DATA = Path(__file__).parent / "data"
SMALL = [
    "simulate",
    "--calm-minutes",
    "1",
    "--panic-minutes",
    "3",
    "--after-minutes",
    "2",
    "--rate",
    "100",
    "--window",
    "120",
    "--workers",
    "1",
    "--no-progress",
]


def test_simulate_prints_the_table_and_the_timeline(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(SMALL) == 0
    out = capsys.readouterr().out
    assert "lineup-leak: 6 min simulated" in out
    for strategy in ("bypass", "breaker", "breaker+coalesce"):
        assert f"\n{strategy} " in out
    assert "normal -> high_volatility" in out
    assert "Mode timeline:" in out


def test_simulate_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SMALL, "--json", "--strategies", "bypass,breaker+coalesce"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"scenario", "strategies", "timeline", "acceptance"}
    assert set(report["strategies"]) == {"bypass", "breaker+coalesce"}
    coalesce = report["strategies"]["breaker+coalesce"]
    assert {
        "requests",
        "computes",
        "computes_in_panic",
        "peak_computes_per_second",
        "cache_info",
        "oldest_served_seconds",
        "staleness_violations",
        "transitions",
        "share_of_bypass",
        "share_of_bypass_in_panic",
    } <= set(coalesce)
    assert report["acceptance"]["staleness_violations"] == 0
    assert 0 < report["acceptance"]["breaker+coalesce_share_of_bypass_in_panic"] < 0.5
    assert report["scenario"]["thresholds"]["enter_circuit_open"] == 0.8


def test_simulate_in_worker_processes(capsys: pytest.CaptureFixture[str]) -> None:
    args = [a if a != "1" or i != SMALL.index("--workers") + 1 else "3" for i, a in enumerate(SMALL)]
    assert main([*args, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["strategies"]) == 3


def test_simulate_replays_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "simulate",
                "--scenario",
                str(DATA / "replay.csv"),
                "--rate",
                "50",
                "--window",
                "120",
                "--workers",
                "1",
                "--no-progress",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["scenario"]["name"] == "replay.csv"


def test_simulate_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "run.png"
    assert main([*SMALL, "--plot", str(target)]) == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "-5"], "rate must be a finite number > 0"),
        (["--strategies", "lru"], "--strategies: unknown strategy 'lru'"),
        (["--change-every", "300,30"], "--change-every needs three numbers"),
        (["--change-every", "300,30,0"], "--change-every must give normal, warning and panic"),
        (["--change-every", "300,30,0.001"], "seconds >= the --step"),
        (["--plot", "/nonexistent-dir/run.png"], "--plot '/nonexistent-dir/run.png': the folder"),
        (["--plot", "run.txt"], "--plot 'run.txt': name a picture file ending in one of"),
        (["--thresholds", "0.5,0.3"], "--thresholds needs four numbers"),
        (["--thresholds", "0.5,0.6,0.8,0.6"], "exit_high_volatility .* strictly below"),
        (["--scenario", "/nowhere.csv"], "--scenario '/nowhere.csv' is unknown: not a bundled scenario"),
        (["--workers", "0"], "--workers must be >= 1"),
        (["--panic-minutes", "-1"], "--panic-minutes must be a finite number >= 0"),
        (["--rate", "many"], "invalid float value"),
    ],
)
def test_bad_options_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", *args])
    assert exit_info.value.code == 2
    assert message.split(".*", maxsplit=1)[0] in capsys.readouterr().err


def test_demo_tells_the_lineup_leak_story(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--rate", "2"]) == 0
    out = capsys.readouterr().out
    assert "normal -> high_volatility" in out
    assert "30 min into the panic: mode circuit_open, a panic request gets TTL 10 s (adaptive)" in out
    assert "after the panic: mode normal, a panic request gets TTL 0 s (bypass)" in out


def test_the_command_logs_every_mode_change_to_stderr_one_line_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The command is an application: it shows vix_ttl's INFO events too, and keeps stdout for the report.
    args = [*SMALL, "--strategies", "breaker+coalesce", "--json"]
    for _ in range(2):  # configured again, not twice over
        assert main(args) == 0
    captured = capsys.readouterr()
    changes = [line.split("] ", 1)[1].split()[:4] for line in captured.err.splitlines()]
    assert (
        changes
        == [
            [
                "breaker_mode_changed",
                "breaker=breaker+coalesce",
                "old_mode=normal",
                "new_mode=high_volatility",
            ],
            [
                "breaker_mode_changed",
                "breaker=breaker+coalesce",
                "old_mode=high_volatility",
                "new_mode=circuit_open",
            ],
            [
                "breaker_mode_changed",
                "breaker=breaker+coalesce",
                "old_mode=circuit_open",
                "new_mode=high_volatility",
            ],
            [
                "breaker_mode_changed",
                "breaker=breaker+coalesce",
                "old_mode=high_volatility",
                "new_mode=normal",
            ],
        ]
        * 2
    )
    assert [line.split("[", 1)[1].split("]")[0].strip() for line in captured.err.splitlines()[:4]] == [
        "WARNING",
        "CRITICAL",
        "WARNING",
        "INFO",
    ]
    assert "breaker_mode_changed" not in captured.out


def test_demo_bad_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--rate", "0"])
    assert exit_info.value.code == 2
    assert "--rate must be a whole number in [1, 10000] requests per second" in capsys.readouterr().err


@pytest.mark.parametrize("package", ["vix_ttl", "vix_ttl.sim"])
def test_python_dash_m_runs_the_command(package: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", package, "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "simulate" in result.stdout


def test_the_core_imports_without_the_optional_extras() -> None:
    # aiocache, redis, prometheus_client, matplotlib and tqdm are extras: `import vix_ttl`,
    # @vix_cached on in-process stores and the simulator's modules must not need them.
    code = (
        "import sys\n"
        "for name in ('aiocache', 'redis', 'prometheus_client', 'matplotlib', 'tqdm'):\n"
        "    sys.modules[name] = None\n"
        "import vix_ttl, vix_ttl.sim.simulate, vix_ttl.sim.cli\n"
        "f = vix_ttl.vix_cached(60, status=lambda x: 'normal')(lambda x: x * 2)\n"
        "assert f(2) == 4 and f(2) == 4 and f.cache_info().hits == 1\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_without_the_sim_extra_only_the_runs_are_refused() -> None:
    code = (
        "import sys\n"
        "sys.modules['tqdm'] = None\n"
        "from vix_ttl.sim.cli import main\n"
        "from vix_ttl.sim.scenario import lineup_leak\n"
        "from vix_ttl.sim.simulate import run\n"
        "assert main(['dashboard']) == 0 and main(['demo']) == 0\n"
        "try:\n"
        "    run(lineup_leak(), ['bypass'])\n"
        "except ImportError as exc:\n"
        "    print(exc, file=sys.stderr)\n"
        "main(['simulate'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 2, result.stderr
    needs = "needs the 'sim' extra (tqdm is not installed): pip install 'vix_ttl[sim]'"
    assert f"vix_ttl.sim.simulate.run {needs}" in result.stderr
    assert f"vix-ttl simulate: error: simulate {needs}" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_every_command_in_plain_words(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("simulate", "frontier", "demo", "dashboard", "alert-rules"):
        assert command in out
    assert "``" not in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == "vix-ttl 0.2.0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "0"], "vix-ttl simulate: error: --window must be a finite number of seconds > 0"),
        (
            ["--bucket", "7"],
            "vix-ttl simulate: error: --window (1800) must be a whole multiple of --bucket (7.0)",
        ),
        (
            ["--scenario", "flash_crash"],
            "is unknown: not a bundled scenario (lineup-leak, flash-crash, calm-day)",
        ),
        (["--scenario", "calm-day", "--panic-minutes", "3"], "--panic-minutes applies to the lineup-leak"),
        (["--end", "60"], "--end applies to a replayed file only"),
        (["--latency-ms", "-1"], "--latency-ms must be a finite number in [0, 600000]"),
    ],
)
def test_every_setting_is_checked_before_the_run_with_the_commands_name(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("vix-ttl simulate: error: ") and len(err.splitlines()) == 1
    assert message in err and "Traceback" not in err


def test_scenario_files_end_where_asked_and_rows_come_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "leak.csv"
    path.write_text("t,status\n0,normal\n60,panic\n90,normal\n")
    assert main(["simulate", "--scenario", str(path), "--end", "331", "--rate", "50", "--no-progress"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert (
        head == "leak.csv: 5 min 31 s simulated (normal from 0 s, panic from 1 min, normal from 1 min 30 s)"
    )
    path.write_text("t,status\n0,normal\n90,panic\n60,normal\n")
    with pytest.raises(SystemExit):
        main(["simulate", "--scenario", str(path)])
    assert "row 3: t=60 comes before the row above it (t=90)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--plot", "."], "--plot '.' is a directory: name a picture file, such as 'run.png'"),
        (["--plot", "run.pgf"], "--plot 'run.pgf': name a picture file"),
        (["--calm-minutes", "0", "--panic-minutes", "0", "--after-minutes", "0"], "add up to 0 min"),
        (["--calm-minutes", "1e10"], "at most a week"),
        (["--latency-ms", "1e13"], "--latency-ms must be a finite number in [0, 600000]"),
        (["--scenario", "feeds/rate/missing.csv"], "--scenario 'feeds/rate/missing.csv' is unknown"),
    ],
)
def test_more_mistakes_caught_before_the_run(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", *args])
    assert message in capsys.readouterr().err


def test_value_files_bring_their_truth_and_their_own_encodings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "odds.csv"
    path.write_bytes("\ufefft,value\n0,2.0\n1,2.1\n".encode())  # a spreadsheet's UTF-8 export, with a BOM
    with pytest.raises(SystemExit):
        main(["simulate", "--scenario", str(path), "--change-every", "1,1,1"])
    assert "--change-every does not apply to a file of observed values" in capsys.readouterr().err
    path.write_text("t,value\n0,2.0\n1,2.1\n", encoding="utf-16")
    with pytest.raises(SystemExit):
        main(["simulate", "--scenario", str(path)])
    assert "odds.csv: not UTF-8 text" in capsys.readouterr().err


def test_ctrl_c_ends_a_run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import vix_ttl.sim.simulate

    def interrupted(self: object, now: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(vix_ttl.sim.simulate._Run, "_sample", interrupted)
    assert main([*SMALL, "--workers", "1", "--no-progress"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_a_csv_header_with_spaces_names_its_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spaced.csv"
    path.write_text("t, status\n0, normal\n60, panic\n")
    assert (
        main(
            ["simulate", "--scenario", str(path), "--rate", "50", "--strategies", "breaker", "--no-progress"]
        )
        == 0
    )
    assert capsys.readouterr().out.startswith(
        "spaced.csv: 1 min 1 s simulated (normal from 0 s, panic from 1 min)"
    )


@pytest.mark.parametrize(
    ("command", "description"),
    [
        ("demo", "Walk one breaker through the lineup-leak story"),
        ("dashboard", "Print the Grafana dashboard (JSON)"),
        ("alert-rules", "Print the Prometheus alert rules (YAML)"),
    ],
)
def test_every_command_has_a_description(
    command: str, description: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert description in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["simulate", "--rate", "-5"],
            "vix-ttl simulate: error: --rate must be a finite number > 0, got -5.0",
        ),
        (
            ["simulate", "--rate", "many"],
            "vix-ttl simulate: error: argument --rate: invalid float value: 'many'",
        ),
        (["frontier", "--ttls", "soon"], "vix-ttl frontier: error: --ttls needs comma-separated seconds"),
        (["demo", "--rate", "0"], "vix-ttl demo: error: --rate must be a whole number in [1, 10000]"),
        (["simulate", "extra"], "vix-ttl simulate: error: unrecognized arguments: extra"),
        (["nonsense"], "vix-ttl: error: argument COMMAND: invalid choice: 'nonsense'"),
        ([], "vix-ttl: error: the following arguments are required: COMMAND"),
    ],
)
def test_an_error_is_one_line_on_stderr_and_exit_2(
    args: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1, captured.err
    assert captured.err.startswith(line)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "--rat", "10"], "unrecognized arguments: --rat 10 (--rat: did you mean --rate?)"),
        (
            ["simulate", "--pl", "run.png"],
            "unrecognized arguments: --pl run.png (--pl: did you mean --plot?)",
        ),
        (["frontier", "--tt", "1"], "unrecognized arguments: --tt 1"),
        (["demo", "--ra", "3"], "unrecognized arguments: --ra 3 (--ra: did you mean --rate?)"),
        (["--vers"], "vix-ttl: error: the following arguments are required: COMMAND"),  # not --version
    ],
)
def test_abbreviated_options_are_refused(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import vix_ttl.sim.cli

    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("an abbreviated option ran the simulation")

    monkeypatch.setattr(vix_ttl.sim.cli, "run", no_run)
    monkeypatch.chdir(tmp_path)  # where --pl run.png would be drawn
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--scenario", "lineup_leak", "--calm-minutes", "3"],
            "--scenario 'lineup_leak' is unknown: not a bundled scenario (lineup-leak, flash-crash, "
            "calm-day), nor a CSV or JSON file to replay (did you mean lineup-leak?)",
        ),
        (["--scenario", "flash_crash", "--end", "60"], "--scenario 'flash_crash' is unknown: not a bundled"),
        (["--scenario", "calmday"], "(did you mean calm-day?)"),
        (["--scenario", "/nowhere.csv"], "--scenario '/nowhere.csv' is unknown: not a bundled scenario"),
        (["--scenario", str(DATA)], f"--scenario {str(DATA)!r} is a directory: name a CSV or JSON file"),
    ],
)
def test_an_unknown_scenario_is_said_unknown_with_the_scenarios_there_are(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["simulate", "--rate", "1e9"],
            "vix-ttl simulate: error: --rate 1e+09/s for 6300 s is 6.3e+12 requests per strategy, "
            "over the limit of 1e+09 requests",
        ),
        (["simulate", "--rate", "1e18"], "is 6.3e+21 requests per strategy, over the limit of 1e+09"),
        (["frontier", "--rate", "1e9", "--scenario", "flash-crash"], "--rate 1e+09/s for 3600 s is 3.6e+12"),
        (["simulate", "--step", "1e-7"], "--step 1e-07 s over 6300 s is 6.3e+10 steps, over the limit"),
        (
            ["simulate", "--rate", "1e5", "--latency-ms", "60000"],
            "--rate 100000/s with a backend of 60 s is up to 6e+06 calls waiting at once, over the limit",
        ),
        (
            ["demo", "--rate", "1000000000"],
            "vix-ttl demo: error: --rate must be a whole number in [1, 10000]",
        ),
    ],
)
def test_a_run_that_cannot_finish_is_refused_before_any_work(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import vix_ttl.sim.cli

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the run started")

    monkeypatch.setattr(vix_ttl.sim.cli, "run", no_work)
    monkeypatch.setattr(vix_ttl.sim.cli, "demo", no_work)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "whole_group"),
    [
        (["frontier", "--no-progress"], True),  # Ctrl-C at a terminal: every process of the group
        (["frontier", "--no-progress"], False),  # kill -INT: the command's process alone
        (["simulate", "--no-progress"], True),
        (["simulate", "--no-progress", "--workers", "1"], True),
    ],
    ids=["frontier-ctrl-c", "frontier-kill-int", "simulate-ctrl-c", "simulate-one-process-ctrl-c"],
)
def test_ctrl_c_ends_a_real_run_with_one_line_and_no_process_left(args: list[str], whole_group: bool) -> None:
    command = subprocess.Popen(
        [sys.executable, "-m", "vix_ttl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal gives a command
    )
    try:
        time.sleep(3)  # process control, not a measure: long enough for the workers to be running
        assert command.poll() is None, "the run ended before it was interrupted"
        if whole_group:
            os.killpg(command.pid, signal.SIGINT)
        else:
            command.send_signal(signal.SIGINT)
        out, err = command.communicate(timeout=60)
    finally:
        if command.poll() is None:
            os.killpg(command.pid, signal.SIGKILL)
            command.communicate()
    assert (command.returncode, out, err.strip()) == (130, "", "interrupted")
    for _ in range(50):  # the workers end with the command: none left in its group
        try:
            os.killpg(command.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.killpg(command.pid, signal.SIGKILL)
        pytest.fail("worker processes outlived the interrupted command")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_plot_into_a_folder_that_cannot_be_written_is_refused_before_the_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # /proc takes no new file, even from root, whom os.access lets write anywhere.
    import vix_ttl.sim.cli

    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the run started")

    monkeypatch.setattr(vix_ttl.sim.cli, "run", no_run)
    with pytest.raises(SystemExit) as exit_info:
        main([*SMALL, "--plot", "/proc/vix-ttl-run.png"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "vix-ttl simulate: error: --plot '/proc/vix-ttl-run.png': cannot write in the folder '/proc'"
    )
    assert len(err.splitlines()) == 1


def test_plot_into_a_directory_says_it_is_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "runs.png"
    folder.mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main([*SMALL, "--plot", str(folder)])
    assert exit_info.value.code == 2
    assert f"--plot {str(folder)!r} is a directory: name a picture file, such as " in capsys.readouterr().err


def _column(lines: list[str], title: str, header: str) -> dict[str, str]:
    """The cells under *header* in the table below the line *title*, by strategy: a right-aligned
    column ends where its header ends, and starts after the column before it."""
    at = lines.index(title)
    head = lines[at + 1]
    end = head.index(header) + len(header)
    start = len(head[: head.index(header)].rstrip())
    rows = {}
    for line in lines[at + 2 :]:
        if not line.strip():
            break
        rows[line.split()[0]] = line[start:end].strip()
    return rows


def test_the_simulate_tables_fit_100_columns_under_headers_that_say_what_they_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    strategies = [*STRATEGIES, "fixed:0.5"]
    assert main([*SMALL, "--strategies", ",".join(strategies)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    headers = [re.split(r"\s{2,}", line.strip()) for line in lines if line.startswith("strategy ")]
    cells = [cell for header in headers for cell in header[1:]]
    assert len(cells) == len(set(cells)), cells  # no two columns headed alike
    assert "in panic" not in cells
    computes = _column(lines, "Backend load:", "computes in panic")
    assert computes.keys() == set(strategies)
    assert computes["bypass"] == "18,000"  # every call of its 3 minutes of panic at 100/s
    assert _column(lines, "Served to callers:", "wrong in panic")["bypass"].endswith("%")


def test_a_column_with_no_meaning_in_a_run_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    # calm-day has no panic: nothing computed in panic, no panic call served, no share of none.
    args = ["simulate", "--scenario", "calm-day", "--rate", "5", "--strategies", "bypass,breaker"]
    assert main([*args, "--workers", "1", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for title, header in [
        ("Backend load:", "computes in panic"),
        ("Backend load:", "panic vs bypass"),
        ("Served to callers:", "wrong in panic"),
        ("Cache:", "oldest in panic"),
    ]:
        assert _column(lines, title, header) == {"bypass": "—", "breaker": "—"}, (title, header)
    assert _column(lines, "Backend load:", "vs bypass")["breaker"].endswith("%")


@pytest.mark.parametrize(("rate", "shown"), [("0.5", "0.5"), ("1000", "1,000"), ("1234.5", "1,234.5")])
def test_the_rate_is_shown_as_given(rate: str, shown: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--calm-minutes", "0.5", "--panic-minutes", "0.5", "--after-minutes", "0", "--rate", rate]
    assert main(["simulate", *args, "--strategies", "breaker", "--workers", "1", "--no-progress"]) == 0
    assert f"\n{shown} requests/s (hot key 95%" in capsys.readouterr().out


def test_a_recovery_never_reads_as_its_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    # At 10 requests/s the window falls below 60 % at 59.98 %: the table said 60.0 %.
    args = ["simulate", "--rate", "10", "--strategies", "breaker", "--workers", "1", "--no-progress"]
    assert main(args) == 0
    assert main([*args, "--json"]) == 0
    table, report = capsys.readouterr().out.split("\n{", 1)
    timeline = json.loads("{" + report)["timeline"]
    assert main(["demo"]) == 0
    demo = capsys.readouterr().out
    exits = {"circuit_open": 0.6, "high_volatility": 0.3}
    for hop in timeline:
        if hop["trigger"] == "recovery":
            assert hop["panic_ratio"] < exits[hop["old"]]
    for text in (table, demo):
        shown = re.findall(r"(\w+) -> \w+ +panic ratio +([\d.]+)%  \(recovery\)", text)
        assert len(shown) == 2, text
        for old, percent in shown:
            assert float(percent) < exits[old] * 100, (old, percent)


def test_the_frontier_table_heads_each_column_once(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--scenario", "calm-day", "--rate", "5", "--ttls", "5", "--workers", "1", "--no-progress"]
    assert main(["frontier", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    (header,) = [re.split(r"\s{2,}", line.strip()) for line in lines if line.startswith("point ")]
    assert len(header) == len(set(header)) and "in panic" not in header, header
    # calm-day has no panic: its panic columns say so, not 0.
    lines = lines[lines.index(next(line for line in lines if line.startswith("point "))) - 1 :]
    assert set(_column(lines, "", "wrong in panic").values()) == {"—"}
    assert set(_column(lines, "", "computes in panic").values()) == {"—"}


def test_demo_shows_each_mode_change_once(capsys: pytest.CaptureFixture[str]) -> None:
    # On a terminal stdout and stderr are one screen: the demo's own lines, not the log's too.
    assert main(["demo", "--rate", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count(" -> ") == 4
    assert "breaker_mode_changed" not in captured.err


@pytest.mark.parametrize("command", ["simulate", "frontier"])
@pytest.mark.parametrize("columns", ["60", "80", "100"])
def test_help_never_breaks_a_name(
    command: str, columns: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from vix_ttl.sim.scenario import BUILT_IN

    monkeypatch.setenv("COLUMNS", columns)
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    names = [*BUILT_IN, *(STRATEGIES if command == "simulate" else ())]
    for name in names:
        assert re.search(rf"(?<![\w+-]){re.escape(name)}(?![\w+-])", out), (name, out)


def test_tolerance_keeps_feed_noise_from_counting_as_news(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "--scenario", str(DATA / "odds.json"), "--rate", "20", "--strategies", "breaker"]
    wrong = {}
    for tolerance in ("0", "0.005"):
        assert main([*args, "--tolerance", tolerance, "--workers", "1", "--no-progress", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["scenario"]["truth_tolerance"] == float(tolerance)
        wrong[tolerance] = report["strategies"]["breaker"]["wrong_served"]
    # Every wobble of the feed a change: 4 calls in 5 "wrong". Within 0.5 %, the calm first
    # 200 s move the truth 13 times, not 199; the 4 % moves of the 400 s after still count.
    assert wrong["0"] > 0.8
    assert wrong["0.005"] < wrong["0"] - 0.15
    assert main([*args, "--workers", "1", "--no-progress"]) == 0  # 0.5 % by default
    assert "values change as the file's values do, by more than 0.5%" in " ".join(
        capsys.readouterr().out.split()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tolerance", "-0.1"], "--tolerance must be a finite number >= 0"),
        (["--tolerance", "nan"], "--tolerance must be a finite number >= 0"),
        (
            ["--scenario", "calm-day", "--tolerance", "0.01"],
            "--tolerance applies to a file of observed values",
        ),
        (
            ["--scenario", str(DATA / "replay.csv"), "--tolerance", "0.01"],
            "--tolerance applies to a file of observed values",
        ),
    ],
)
def test_tolerance_is_checked(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
