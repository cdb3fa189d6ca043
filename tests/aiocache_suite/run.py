"""Run aiocache 0.12.3's own test suite against vix_ttl's aiocache drop-ins.

    .venv/bin/python tests/aiocache_suite/run.py [--without-plugin | --baseline] [--list-failures]
                                                 [-- PYTEST_ARGS...]

Gets aiocache's sdist from PyPI with pip (cached in .venv/aiocache-suite/),
extracts its tests/ into a temporary directory, runs pytest on
tests/acceptance and tests/ut/test_decorators.py with vix_suite_plugin.py
(see there for what it changes), and compares the outcomes with
expected_failures.txt. Exit status: 0 when every test passed or failed as
listed, 1 when any did otherwise (an unlisted failure, a listed test that
passes or was not run, a skip), 2 when the harness itself could not run.

Redis and memcached come from $REDIS_PORT and $MEMCACHED_PORT; without them,
run.py runs itself again under .ci/with-services, which starts them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VERSION = "0.12.3"
SDIST = f"aiocache-{VERSION}.tar.gz"
SDIST_SHA256 = "f528b27bf4d436b497a1d0d1a8f59a542c153ab1e37c3621713cb376d44c4713"
CACHE_DIR = ROOT / ".venv" / "aiocache-suite"
EXPECTED = HERE / "expected_failures.txt"
SELECTION = ("tests/acceptance", "tests/ut/test_decorators.py")
NEEDED = {"pytest_mock": "pytest-mock", "marshmallow": "marshmallow", "pytest_asyncio": "pytest-asyncio"}
PYTEST_TIMEOUT = 300  # seconds for the whole pytest run (it takes about a minute)
SEPARATOR = " | "
TAGS = ("with-plugin", "without-plugin", "flaky")

PYTEST_INI = """\
[pytest]
# Written by vix_ttl's tests/aiocache_suite/run.py: aiocache's setup.cfg, less coverage,
# with warnings shown rather than raised (aiocache 0.12.3 calls redis-py's deprecated API).
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
addopts = --strict-markers -p no:cacheprovider
xfail_strict = true
markers =
    memcached: tests requiring memcached backend
    redis: tests requiring redis backend
filterwarnings =
    ignore:Call to deprecated close:DeprecationWarning:aiocache.backends.redis
    ignore:Call to deprecated setex:DeprecationWarning:aiocache.backends.redis
"""


class HarnessError(Exception):
    """The suite could not be run (exit status 2)."""


# -- getting the suite -------------------------------------------------------------------


def sdist() -> Path:
    """aiocache's sdist, downloaded by pip on first use and checked against its known hash.

    pip downloads into a folder of this run's own, and the file is then renamed into place:
    a run at the same time never reads it half written."""
    path = CACHE_DIR / SDIST
    if not path.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="download-") as folder:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
            command += ["--disable-pip-version-check", "-q", f"aiocache=={VERSION}", "-d", folder]
            print("aiocache suite: downloading", SDIST, "with pip", flush=True)
            done = subprocess.run(command, check=False)
            downloaded = Path(folder) / SDIST
            if done.returncode != 0 or not downloaded.exists():
                raise HarnessError(f"pip could not download {SDIST} into {CACHE_DIR}")
            downloaded.replace(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise HarnessError(
            f"{path} has sha256 {digest}, expected {SDIST_SHA256}: delete it to download again"
        )
    return path


def extract_tests(archive: Path, into: Path) -> None:
    """Extract the sdist's ``tests/`` (only) into *into*, as ``into/tests``."""
    prefix = f"aiocache-{VERSION}/"
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix + "tests/")]
        names = {m.name[len(prefix) :] for m in members}
        missing = [
            name
            for name in ("tests/acceptance/conftest.py", "tests/ut/test_decorators.py")
            if name not in names
        ]
        if missing:
            top = sorted(
                {m.name[len(prefix) :].split("/")[0] for m in tar.getmembers() if m.name.startswith(prefix)}
            )
            raise HarnessError(f"{archive.name} has no {', '.join(missing)}; it holds: {', '.join(top)}")
        for member in members:
            member.name = member.name[len(prefix) :]
        tar.extractall(into, members=members, filter="data")
    (into / "pytest.ini").write_text(PYTEST_INI)


# -- environment ----------------------------------------------------------------------------


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def check_environment() -> None:
    missing = []
    for module, package in NEEDED.items():
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise HarnessError(f"missing test dependencies: .venv/bin/pip install {' '.join(missing)}")
    for name in ("REDIS_PORT", "MEMCACHED_PORT"):
        port = int(os.environ[name])
        if not listening(port):
            raise HarnessError(f"nothing listens on 127.0.0.1:{port} (${name})")


def under_services(argv: list[str]) -> int:
    """Run this script again under .ci/with-services, with servers of its own.

    aiocache's suite flushes its servers (memcached ``flush_all``, Redis ``FLUSHDB``):
    with-services starts the run's own, on free ports, rather than using ones other tests use."""
    script = str(Path(__file__).resolve())
    command = ["bash", str(ROOT / ".ci" / "with-services"), sys.executable, script, *argv]
    print(
        "aiocache suite: no $REDIS_PORT/$MEMCACHED_PORT: running under .ci/with-services "
        "(servers of its own, on free ports)",
        flush=True,
    )
    return subprocess.run(command, check=False).returncode


# -- expectations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    reason: str
    line: int
    flaky: bool = False


def load_expected(path: Path, with_plugin: bool) -> dict[str, Expected]:
    """``[tags] node id | reason`` per line; ``#`` starts a comment line.

    Tags (optional): ``[with-plugin]`` / ``[without-plugin]`` limit a line to one
    configuration; ``[flaky]`` accepts either outcome (still printed)."""
    expected: dict[str, Expected] = {}
    if not path.exists():
        return expected
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tags = set()
        while line.startswith("["):
            tag, _, line = line[1:].partition("]")
            if tag not in TAGS:
                raise HarnessError(f"{path.name}:{number}: unknown tag [{tag}] (known: {', '.join(TAGS)})")
            tags.add(tag)
            line = line.strip()
        if ("with-plugin" in tags and not with_plugin) or ("without-plugin" in tags and with_plugin):
            continue
        nodeid, sep, reason = (part.strip() for part in line.partition(SEPARATOR.strip()))
        if not sep or not reason or not nodeid or " " in nodeid:
            raise HarnessError(f"{path.name}:{number}: expected '[tags] node id | reason', got {raw!r}")
        if nodeid in expected:
            raise HarnessError(f"{path.name}:{number}: {nodeid} is listed twice")
        expected[nodeid] = Expected(reason, number, flaky="flaky" in tags)
    return expected


# -- running ---------------------------------------------------------------------------------


def run_pytest(workdir: Path, report: Path, mode: list[str], extra: list[str], verbose: bool) -> int:
    command = [sys.executable, "-m", "pytest", "-p", "vix_suite_plugin", f"--vix-report={report}", *mode]
    command += ["-rN", "--tb=no", "-q" if not verbose else "-v", "--color=no"]
    command += extra or list(SELECTION)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_PLUGINS", None)
    print("aiocache suite: in", workdir, ":", shlex.join(command[1:]), flush=True)
    try:
        return subprocess.run(command, cwd=workdir, env=env, timeout=PYTEST_TIMEOUT, check=False).returncode
    except subprocess.TimeoutExpired:
        raise HarnessError(f"pytest ran longer than {PYTEST_TIMEOUT}s and was stopped") from None


@dataclass
class Outcome:
    passed: list[str] = field(default_factory=list)
    as_listed: list[str] = field(default_factory=list)  # listed failures that failed
    flaky: list[str] = field(default_factory=list)  # "[flaky] node id: passed|failed"
    unexpected: list[str] = field(default_factory=list)


def compare(results: dict[str, dict[str, Any]], expected: dict[str, Expected], full_run: bool) -> Outcome:
    """Sort each test's outcome against the expected failures."""
    out = Outcome()
    for nodeid, result in results.items():
        outcome, message = result["outcome"], result.get("message", "")
        listed = expected.get(nodeid)
        if outcome not in ("passed", "failed", "error"):
            out.unexpected.append(f"{outcome.upper()} (the suite skips nothing): {nodeid} - {message}")
        elif listed is not None and listed.flaky:
            out.flaky.append(f"{nodeid}: {outcome}")
        elif outcome == "passed":
            if listed is None:
                out.passed.append(nodeid)
            else:
                out.unexpected.append(f"PASSES, but listed (line {listed.line}): {nodeid}")
        elif listed is None:
            out.unexpected.append(f"{outcome.upper()}: {nodeid} - {message}")
        else:
            out.as_listed.append(nodeid)
    if full_run:
        for nodeid, listed in expected.items():
            if nodeid not in results:
                out.unexpected.append(f"NOT RUN, but listed (line {listed.line}): {nodeid}")
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--without-plugin",
        action="store_true",
        help="run with VixSerializer only, no VixPlugin in the caches' plugins",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="aiocache alone (no vix_ttl): what its suite does here; only [flaky] lines apply",
    )
    parser.add_argument("--expected", type=Path, default=EXPECTED, help="the expected-failures file")
    parser.add_argument(
        "--list-failures",
        action="store_true",
        help="print every failing test with its message (listed or not)",
    )
    parser.add_argument(
        "--tracebacks", type=int, default=5, help="tracebacks of unexpected failures to print"
    )
    parser.add_argument("--keep", action="store_true", help="keep the extracted suite and report")
    parser.add_argument("-v", "--verbose", action="store_true", help="pytest -v")
    parser.add_argument(
        "pytest_args", nargs="*", help="after --: pytest arguments instead of the whole selection"
    )
    args = parser.parse_args(argv)
    if "REDIS_PORT" not in os.environ or "MEMCACHED_PORT" not in os.environ:
        return under_services(argv)

    started = time.monotonic()
    with_plugin = not args.without_plugin
    if args.baseline:
        mode, config = ["--vix-baseline"], "baseline: aiocache alone"
    else:
        mode = ["--vix-plugin" if with_plugin else "--no-vix-plugin"]
        config = "with VixPlugin" if with_plugin else "without VixPlugin"
    try:
        check_environment()
        expected = load_expected(args.expected, with_plugin)
        if args.baseline:  # aiocache alone: only its own flaky tests may fail
            expected = {nodeid: entry for nodeid, entry in expected.items() if entry.flaky}
        workdir = Path(tempfile.mkdtemp(prefix="aiocache-suite-"))
        try:
            extract_tests(sdist(), workdir)
            report = workdir / "report.json"
            status = run_pytest(workdir, report, mode, args.pytest_args, args.verbose)
            if not report.exists():
                raise HarnessError(f"pytest exited with status {status} and wrote no report")
            data = json.loads(report.read_text())
            if status not in (0, 1):  # 1: some tests failed; anything else: pytest itself did not run
                raise HarnessError(
                    f"pytest exited with status {status} (interrupted, usage or internal error)"
                )
        finally:
            if args.keep:
                print("aiocache suite: kept", workdir)
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    except HarnessError as exc:
        print(f"aiocache suite: HARNESS ERROR: {exc}", file=sys.stderr)
        return 2

    results: dict[str, dict[str, Any]] = data["tests"]
    out = compare(results, expected, full_run=not args.pytest_args)
    if not data["takes_secret"] and not args.baseline:
        print(
            "aiocache suite: note: VixSerializer takes no secret= yet; "
            "pickle serializers are wrapped without one"
        )
    if args.list_failures:
        for nodeid, result in results.items():
            if result["outcome"] in ("failed", "error"):
                mark = "listed" if nodeid in expected else "NEW"
                print(f"{mark:6} {nodeid}{SEPARATOR}{result.get('when')}: {result.get('message', '')}")
    shown = 0
    for nodeid, result in results.items():
        if result["outcome"] in ("failed", "error") and nodeid not in expected and shown < args.tracebacks:
            shown += 1
            print(f"\n{'_' * 20} {nodeid} ({result['when']}) {'_' * 20}\n{result.get('longrepr', '')}")
    for line in out.flaky:
        print("FLAKY (listed, either outcome accepted)", line)
    for line in out.unexpected:
        print("UNEXPECTED", line)
    flaky = f", {len(out.flaky)} listed flaky" if out.flaky else ""
    print(
        f"aiocache suite: {len(out.passed)} passed, {len(out.as_listed)} expected failures (listed), "
        f"{len(out.unexpected)} unexpected{flaky} "
        f"[{config}, aiocache {VERSION}, {time.monotonic() - started:.0f}s]"
    )
    return 1 if out.unexpected else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
