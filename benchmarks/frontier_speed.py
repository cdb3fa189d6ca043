"""How long a frontier takes: 9 points of lineup-leak, in parallel processes, every call real.

Runs ``vix-ttl frontier --ttls 0,1,2,5,10,30,60`` (seven fixed TTLs, vix_ttl's default and
learned policies: 9 points, about 57 million real ``@vix_cached`` calls) through the
command's own entry point, the way a user runs it, and prints the frontier and the wall
time against its 3-minute budget. A benchmark, not a test: it asserts nothing.

Run it with ``make bench-frontier``, or ``.venv/bin/python benchmarks/frontier_speed.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

BUDGET_SECONDS = 180
COMMAND = ["-m", "vix_ttl", "frontier", "--ttls", "0,1,2,5,10,30,60", "--no-progress"]


def main() -> int:
    started = time.monotonic()
    done = subprocess.run([sys.executable, *COMMAND], capture_output=True, text=True, check=False)
    took = time.monotonic() - started
    print(done.stdout)
    if done.returncode:
        print(done.stderr, file=sys.stderr)
        return done.returncode
    cpus = os.cpu_count() or 1
    print(
        f"9 points in {took:.0f} s on {cpus} CPUs: "
        f"{took / BUDGET_SECONDS:.2f}x the budget of {BUDGET_SECONDS} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
