"""HTTP caches under a real load generator: vix_ttl against its peers, and the odds story.

``peers`` (the default): one FastAPI endpoint whose backend takes 50 ms
(``benchmarks/http_peers.py``), cached by each configuration in turn: no cache,
``VixCacheMiddleware``, ``@vix_cached`` in the endpoint, cashews' ``@cache`` (alone, and
with its FastAPI middlewares) and fastapi-cache2's ``@cache`` (in memory). Each runs under
one uvicorn worker on loopback, is warmed (every URL asked once), then driven by Debian's
``wrk`` (one thread, ``--connections`` connections, each request for one of 20 URLs at
random: a hot path). The configurations take turns, round after round (``--rounds``), and
each figure is the median of its rounds. It prints requests/s, wrk's p50/p99, each against
the best peer's, the versions, and the middleware's in-process cost per hit against the bare
app's call (an ASGI call loop, no sockets).

``story``: the example odds service (``examples/odds_service.py``), its feed calm for
``--calm`` seconds then in panic, with no cache, ``@vix_cached`` and the middleware; it
prints requests/s, p50/p99 and the backend's computations during the panic against the
requests made then.

Run it with ``make bench-http`` (both) or ``.venv/bin/python benchmarks/http_load.py
[peers|story]``. A benchmark, not a test: it asserts nothing and prints what it measured
(wrk and the server share this machine's cores: compare the ratios, not the absolute figures).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the benchmarks package and the example

from benchmarks.asgi_calls import call_loop  # noqa: E402 - after the path it needs
from benchmarks.conftest import paired_ratio  # noqa: E402
from benchmarks.http_peers import build  # noqa: E402

PEERS = {
    "no cache": "none",
    "VixCacheMiddleware": "middleware",
    "@vix_cached in the endpoint": "decorator",
    "cashews @cache": "cashews",
    "cashews @cache + its middlewares": "cashews-middleware",
    "fastapi-cache2 @cache": "fastapi-cache2",
}
OTHERS = ("cashews", "cashews-middleware", "fastapi-cache2")
STORY = {
    "no cache": "none",
    "@vix_cached on the handler": "decorator",
    "VixCacheMiddleware": "middleware",
}
VERSIONS = ("vix_ttl", "fastapi", "starlette", "uvicorn", "cashews", "fastapi-cache2")
# Each request asks for one of the 20 matches, at random.
RANDOM_MATCH = 'request = function() return wrk.format("GET", "/odds/match-" .. math.random(1, 20)) end\n'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", choices=("peers", "story"), default="peers")
    parser.add_argument("--seconds", type=int, default=10, help="wrk's run per configuration and round")
    parser.add_argument("--rounds", type=int, default=3, help="peers: rounds, the configurations in turn")
    parser.add_argument("--calm", type=int, default=5, help="story: seconds of calm before the panic")
    parser.add_argument("--connections", type=int, default=32, help="wrk's open connections (default 32)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install --no-install-recommends wrk", file=sys.stderr)
        return 1
    if args.what == "peers":
        peers(args)
    else:
        story(args)
    return 0


# -- peers ------------------------------------------------------------------------------


def peers(args: argparse.Namespace) -> None:
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in PEERS}
    for round_ in range(args.rounds):
        names = list(PEERS)
        names = names[round_ % len(names) :] + names[: round_ % len(names)]  # each goes first in turn
        for name in names:
            env = {"VIX_PEER": PEERS[name], "BACKEND_SECONDS": "0.05"}
            with serving("benchmarks.http_peers:app", env) as url:
                for match in range(1, 21):  # warm: every URL once
                    httpx.get(f"{url}/odds/match-{match}", timeout=10)
                runs[name].append(load(url, args.seconds, args.connections))
    rows = {
        name: {field: statistics.median(run[field] for run in runs[name]) for field in runs[name][0]}
        for name in PEERS
    }
    best = max((rows[name] for name in PEERS if PEERS[name] in OTHERS), key=lambda row: row["rps"])
    print(
        f"\nFastAPI endpoint, backend 50 ms, one uvicorn worker, wrk 1 thread x {args.connections} "
        f"connections, 20 hot URLs; median of {args.rounds} interleaved rounds of {args.seconds} s\n"
    )
    header = f"{'configuration':<34} {'requests/s':>11} {'vs best peer':>13} {'p50 ms':>8} {'p99 ms':>8}"
    print(f"{header} {'p99 vs best':>12}")
    for name, row in rows.items():
        print(
            f"{name:<34} {row['rps']:>11,.0f} {row['rps'] / best['rps']:>12.2f}x {row['p50']:>8.2f} "
            f"{row['p99']:>8.2f} {row['p99'] / best['p99']:>11.2f}x"
        )
    loop = asyncio.new_event_loop()
    ratio = paired_ratio(
        call_loop(loop, build("middleware", 0), "/odds/match-1"),
        call_loop(loop, build("none", 0), "/odds/match-1"),
        n=500,
    )
    loop.close()
    print(f"\nin process: a VixCacheMiddleware hit costs {ratio:.2f}x the bare FastAPI app's call")
    print("versions: " + ", ".join(f"{name} {importlib.metadata.version(name)}" for name in VERSIONS))


# -- story ------------------------------------------------------------------------------


def story(args: argparse.Namespace) -> None:
    rows = []
    for name, mode in STORY.items():
        env = {"VIX_EXAMPLE_CACHE": mode, "VIX_EXAMPLE_CALM": str(args.calm), "VIX_EXAMPLE_PANIC": "100000"}
        with serving("examples.odds_service:app", env, ready="/stats") as url:
            row: dict[str, Any] = {"name": name, **load(url, args.seconds, args.connections)}
            stats = httpx.get(f"{url}/stats").json()
        row |= {
            "computes": stats["computes"]["total"],
            "computes_in_panic": stats["computes"]["in_panic"],
            "requests_in_panic": stats["requests"]["in_panic"],
        }
        rows.append(row)
    print(
        f"\n{args.seconds} s per configuration, {args.connections} connections, backend 50 ms, "
        f"feed calm {args.calm} s then panic\n"
    )
    print(
        f"{'configuration':<28} {'requests/s':>11} {'vs none':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'computes':>9} {'in panic':>9} {'panic requests':>15} {'computes/panic req':>19}"
    )
    base = rows[0]["rps"]
    for row in rows:
        share = row["computes_in_panic"] / row["requests_in_panic"] if row["requests_in_panic"] else 0.0
        print(
            f"{row['name']:<28} {row['rps']:>11,.0f} {row['rps'] / base:>7.1f}x {row['p50']:>8.2f} "
            f"{row['p99']:>8.2f} {row['computes']:>9,} {row['computes_in_panic']:>9,} "
            f"{row['requests_in_panic']:>15,} {share:>18.1%}"
        )


# -- one server, one load ---------------------------------------------------------------


@contextmanager
def serving(app: str, env: dict[str, str], *, ready: str = "/odds/match-1") -> Iterator[str]:
    """*app* under one uvicorn worker on a free loopback port, with *env*; its URL once it answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    inherited = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    server = subprocess.Popen(
        [*command, "--log-level", "warning", "--no-access-log"], cwd=ROOT, env={**inherited, **env}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # a server starting: wait until it answers
            try:
                httpx.get(f"{url}{ready}", timeout=5)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{app} did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def load(url: str, seconds: int, connections: int) -> dict[str, float]:
    """wrk's requests/s and latency p50/p99 (ms) for *url*, each request for a random match."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(RANDOM_MATCH)
        script.flush()
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # -t1: one core each
    if "Non-2xx" in out or "Socket errors" in out:
        print(out, file=sys.stderr)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": _latency(out, "50%"),
        "p99": _latency(out, "99%"),
    }


def _latency(out: str, quantile: str) -> float:
    """wrk's latency at *quantile*, in ms."""
    value, unit = re.search(rf"{quantile}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


if __name__ == "__main__":
    sys.exit(main())
