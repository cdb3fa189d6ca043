"""A real fleet on one Redis: how many computations per TTL window, and how long callers wait.

Eight worker processes (as behind a load balancer), each an asyncio loop calling one hot
key at a fixed rate, through ``@vix_cached`` over a real Redis on loopback. The backend
takes 50 ms and counts its computations in Redis itself (``INCR``), outside the library.
The TTL is 1 s. For each configuration it prints the fleet's computations per TTL window
and the callers' latency (p50, p99, max) after a warm-up:

    coalesce off | coalesce (fleet-wide lease) | + stale_while_revalidate | + early refresh

Run it with ``make bench-fleet`` (Redis from ``.ci/with-services``), or:
``bash .ci/with-services .venv/bin/python benchmarks/fleet_single_flight.py [--seconds 20]``.
A benchmark, not a test: it asserts nothing and prints what it measured.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import time
import uuid
from typing import Any

CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "coalesce off": {"coalesce": False},
    "coalesce (lease)": {"coalesce": True},
    "coalesce + swr": {"coalesce": True, "stale_while_revalidate": 1.0},
    "coalesce + swr + early": {"coalesce": True, "stale_while_revalidate": 1.0, "early_refresh": 1.0},
}
TTL = 1.0
BACKEND_SECONDS = 0.05
WARM_UP = 2.0


def worker(  # noqa: PLR0917 - a process target takes its arguments by position
    port: int, namespace: str, options: dict[str, Any], rate: float, seconds: float, out: Any
) -> None:
    """One process of the fleet: calls the hot key *rate* times a second for *seconds*."""
    import redis.asyncio as aioredis
    from aiocache import RedisCache

    from vix_ttl import VIXCircuitBreaker, vix_cached

    async def main() -> None:
        counter = aioredis.Redis(port=port)
        cache = RedisCache(endpoint="127.0.0.1", port=port, namespace=namespace)

        @vix_cached(
            TTL,
            status=lambda match: "normal",
            breaker=VIXCircuitBreaker(),
            cache=cache,
            namespace="odds",
            **options,
        )
        async def odds(match: int) -> float:
            await counter.incr(f"{namespace}computes")
            await asyncio.sleep(BACKEND_SECONDS)
            return 1.85

        latencies: list[float] = []
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def call(at: float) -> None:
            began = time.perf_counter()
            await odds(1)
            if at - start >= WARM_UP:
                latencies.append(time.perf_counter() - began)

        tasks = []
        for i in range(int(rate * seconds)):
            at = start + i / rate
            await asyncio.sleep(max(0.0, at - loop.time()))  # a fixed rate: calls never wait for each other
            tasks.append(asyncio.create_task(call(at)))
        await asyncio.gather(*tasks)
        await cache.close()
        await counter.aclose()
        out.put(latencies)

    asyncio.run(main())


def measure(
    port: int, options: dict[str, Any], processes: int, rate: float, seconds: float
) -> dict[str, float]:
    import redis

    namespace = f"fleet-bench-{uuid.uuid4().hex[:8]}:"
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    workers = [
        context.Process(target=worker, args=(port, namespace, options, rate, seconds, out))
        for _ in range(processes)
    ]
    for process in workers:
        process.start()
    latencies = [latency for _ in workers for latency in out.get(timeout=seconds + 120)]
    for process in workers:
        process.join(60)
    computes = int(redis.Redis(port=port).get(f"{namespace}computes") or 0)
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "computes per TTL window": computes / (seconds / TTL),
        "p50 ms": quantiles[49] * 1000,
        "p99 ms": quantiles[98] * 1000,
        "max ms": max(latencies) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--rate", type=float, default=100.0, help="calls per second per process")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=int(os.environ.get("REDIS_PORT", "6390")))
    args = parser.parse_args()
    print(
        f"{args.processes} processes x {args.rate:g} calls/s on one hot key, "
        f"backend {BACKEND_SECONDS * 1000:g} ms, TTL {TTL:g} s, {args.seconds:g} s each "
        f"(latency after {WARM_UP:g} s of warm-up)"
    )
    print(f"{'configuration':<24} {'computes/TTL window':>20} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, options in CONFIGURATIONS.items():
        result = measure(args.port, options, args.processes, args.rate, args.seconds)
        print(
            f"{name:<24} {result['computes per TTL window']:>20.2f} {result['p50 ms']:>8.2f} "
            f"{result['p99 ms']:>8.2f} {result['max ms']:>8.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
