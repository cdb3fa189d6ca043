"""The example odds service under a real load generator: no cache, ``@vix_cached``, the middleware.

For each configuration, the example (``examples/odds_service.py``) runs under uvicorn on
loopback, its feed calm for ``--calm`` seconds then in panic, and Debian's ``wrk`` drives
it for ``--seconds`` with ``--connections`` open connections, each request for one of the
20 matches at random. The backend takes 50 ms. It prints requests/s, latency p50/p99 (as
wrk measures them) and the backend's computes, all and during panic, against the
requests made during panic (counted by the service itself, in front of every cache).

Run it with ``make bench-http`` or ``.venv/bin/python benchmarks/http_load.py``. A
benchmark, not a test: it asserts nothing and prints what it measured (wrk and the
service share this machine's cores: compare the ratios, not the absolute figures).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).parent.parent
UVICORN = [sys.executable, "-m", "uvicorn", "examples.odds_service:app", "--host", "127.0.0.1"]
UVICORN += ["--log-level", "warning", "--no-access-log"]
CONFIGURATIONS = {
    "no cache": "none",
    "@vix_cached on the handler": "decorator",
    "VixCacheMiddleware": "middleware",
}
# Each request asks for one of the 20 matches, at random.
RANDOM_MATCH = 'request = function() return wrk.format("GET", "/odds/match-" .. math.random(1, 20)) end\n'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30, help="wrk's run per configuration (default 30)")
    parser.add_argument("--calm", type=int, default=5, help="seconds of calm before the panic (default 5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk's open connections (default 32)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install --no-install-recommends wrk", file=sys.stderr)
        return 1
    rows = [run(name, mode, args) for name, mode in CONFIGURATIONS.items()]
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
    return 0


def run(name: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env |= {"VIX_EXAMPLE_CACHE": mode, "VIX_EXAMPLE_CALM": str(args.calm), "VIX_EXAMPLE_PANIC": "100000"}
    server = subprocess.Popen(
        [*UVICORN, "--port", str(port)],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                httpx.get(f"{url}/stats", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
            script.write(RANDOM_MATCH)
            script.flush()
            out = subprocess.run(
                [
                    "wrk",
                    "-t1",  # one thread: the other core is the server's
                    f"-c{args.connections}",
                    f"-d{args.seconds}s",
                    "--latency",
                    "-s",
                    script.name,
                    url,
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        stats = httpx.get(f"{url}/stats").json()
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"--- {name}: mode at the end {stats['mode']}\n{out}", file=sys.stderr)
    return {
        "name": name,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": _latency(out, "50%"),
        "p99": _latency(out, "99%"),
        "computes": stats["computes"]["total"],
        "computes_in_panic": stats["computes"]["in_panic"],
        "requests_in_panic": stats["requests"]["in_panic"],
    }


def _latency(out: str, quantile: str) -> float:
    """wrk's latency at *quantile*, in ms."""
    value, unit = re.search(rf"{quantile}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


if __name__ == "__main__":
    sys.exit(main())
