"""A real fleet on one Redis: how many computations, and how long callers wait, as the backend misbehaves.

Eight worker processes (as behind a load balancer), each an asyncio loop calling one hot
key at a fixed rate, through ``@vix_cached`` over a real Redis on loopback. The backend
counts its computations in Redis itself (``INCR``), outside the library. After a warm-up,
each configuration prints the fleet's computations and the callers' latency (p50, p99, max):

- coalesce off | coalesce (fleet-wide lease) | + stale_while_revalidate | + early refresh:
  a 50 ms backend, a 1 s TTL: computations per TTL window;
- **bypass**: every call's status is panic, in NORMAL mode (the first minutes of a
  panic): computations of the fleet against those of one process at the same load;
- **slow backend**: a computation takes 12 s, longer than the 5 s lease: computations
  per expiry of the entry, fleet-wide (the holder renews its lease);
- **failing backend**: the computation raises after 1 s: how long after the lease
  holder's failure each waiting process has its own exception (every process calls at
  once, in rounds).

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

STEADY: dict[str, dict[str, Any]] = {
    "coalesce off": {"coalesce": False},
    "coalesce (lease)": {"coalesce": True},
    "coalesce + swr": {"coalesce": True, "stale_while_revalidate": 1.0},
    "coalesce + swr + early": {"coalesce": True, "stale_while_revalidate": 1.0, "early_refresh": 1.0},
}
TTL = 1.0
BACKEND_SECONDS = 0.05
SLOW_SECONDS = 12.0  # longer than the lease (5 s)
SLOW_TTL = 30.0
FAIL_AFTER = 1.0
WARM_UP = 2.0
ROUNDS = 5


def worker(  # noqa: PLR0917 - a process target takes its arguments by position
    port: int, namespace: str, workload: dict[str, Any], rate: float, seconds: float, out: Any
) -> None:
    """One process of the fleet: calls the hot key *rate* times a second for *seconds*."""
    import redis.asyncio as aioredis
    from aiocache import RedisCache

    from vix_ttl import VIXCircuitBreaker, vix_cached

    async def main() -> None:
        counter = aioredis.Redis(port=port)
        cache = RedisCache(endpoint="127.0.0.1", port=port, namespace=namespace)

        @vix_cached(
            workload["ttl"],
            status=lambda match: workload["status"],
            breaker=VIXCircuitBreaker(min_samples=10**9),  # NORMAL throughout: panic bypasses
            cache=cache,
            namespace="odds",
            **workload["options"],
        )
        async def odds(match: int) -> float:
            await counter.incr(f"{namespace}computes")
            await asyncio.sleep(workload["backend"])
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
        await asyncio.sleep(workload["backend"] + 0.5)  # background refreshes end before the cache closes
        await cache.close()
        await counter.aclose()
        out.put(latencies)

    asyncio.run(main())


def failing_worker(port: int, namespace: str, barrier: Any, out: Any) -> None:
    """One process calling once per round, all at once; the backend fails after FAIL_AFTER."""
    import redis.asyncio as aioredis
    from aiocache import RedisCache

    from vix_ttl import VIXCircuitBreaker, vix_cached

    async def main() -> None:
        counter = aioredis.Redis(port=port)
        cache = RedisCache(endpoint="127.0.0.1", port=port, namespace=namespace)

        @vix_cached(
            TTL, status=lambda match: "normal", breaker=VIXCircuitBreaker(), cache=cache, namespace="o"
        )
        async def odds(match: int) -> float:
            await counter.incr(f"{namespace}computes")
            await asyncio.sleep(FAIL_AFTER)
            await counter.rpush(f"{namespace}failed", repr(time.time()))  # when this computation failed
            raise ConnectionError("the backend is down")

        raised = []
        for round_ in range(ROUNDS):
            await asyncio.to_thread(barrier.wait, 60)
            try:
                await odds(round_)
            except ConnectionError:
                raised.append((round_, time.time()))
        await cache.close()
        await counter.aclose()
        out.put(raised)

    asyncio.run(main())


def fleet(processes: int, target: Any, *args: Any) -> list[Any]:
    """Run *processes* copies of *target*(*args*, [a barrier they share,] a queue); what each put on it."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    shared = (context.Barrier(processes),) if target is failing_worker else ()
    workers = [context.Process(target=target, args=(*args, *shared, out)) for _ in range(processes)]
    for process in workers:
        process.start()
    results = [out.get(timeout=600) for _ in workers]
    for process in workers:
        process.join(60)
    return results


def steady(
    port: int, workload: dict[str, Any], processes: int, rate: float, seconds: float
) -> dict[str, float]:
    import redis

    namespace = f"fleet-bench-{uuid.uuid4().hex[:8]}:"
    runs = fleet(processes, worker, port, namespace, workload, rate, seconds)
    latencies = [latency for run in runs for latency in run]
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "computes": int(redis.Redis(port=port).get(f"{namespace}computes") or 0),
        "p50 ms": quantiles[49] * 1000,
        "p99 ms": quantiles[98] * 1000,
        "max ms": max(latencies) * 1000,
    }


def failing(port: int, processes: int) -> dict[str, float]:
    """Per round: how long after the holder failed each other process raised (the latest of them)."""
    import redis

    namespace = f"fleet-bench-{uuid.uuid4().hex[:8]}:"
    raised = [x for run in fleet(processes, failing_worker, port, namespace) for x in run]
    client = redis.Redis(port=port)
    failures = sorted(float(t) for t in client.lrange(f"{namespace}failed", 0, -1))
    after = []
    for round_ in range(ROUNDS):
        times = sorted(t for r, t in raised if r == round_)
        holder_failed = min(t for t in failures if t >= times[0] - 0.01)  # the first failure of the round
        after.append(max(times) - holder_failed)
    return {
        "computes per round": int(client.get(f"{namespace}computes") or 0) / ROUNDS,
        "slowest waiter after the holder failed (ms)": max(after) * 1000,
        "median round (ms)": statistics.median(after) * 1000,
    }


def row(name: str, result: dict[str, float], per: float = 1.0) -> None:
    """One configuration's line: its computations (per *per*), then its latencies."""
    print(
        f"{name:<24} {result['computes'] / per:>20.2f} {result['p50 ms']:>8.2f} {result['p99 ms']:>8.2f} "
        f"{result['max ms']:>8.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--rate", type=float, default=100.0, help="calls per second per process")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--port", type=int, default=os.environ.get("REDIS_PORT"), help="Redis's port (default: $REDIS_PORT)"
    )
    args = parser.parse_args()
    if args.port is None:
        parser.error("no $REDIS_PORT: run it under .ci/with-services (`make bench-fleet`), or give --port")
    n = args.processes
    print(
        f"{n} processes x {args.rate:g} calls/s on one hot key, {args.seconds:g} s each "
        f"(latency after {WARM_UP:g} s of warm-up)"
    )
    print(f"\nbackend {BACKEND_SECONDS * 1000:g} ms, TTL {TTL:g} s")
    print(f"{'configuration':<24} {'computes/TTL window':>20} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, options in STEADY.items():
        workload = {"ttl": TTL, "status": "normal", "backend": BACKEND_SECONDS, "options": options}
        row(name, steady(args.port, workload, n, args.rate, args.seconds), per=args.seconds / TTL)

    print(f"\nbypass: every status panic in NORMAL mode, backend {BACKEND_SECONDS * 1000:g} ms")
    print(f"{'configuration':<24} {'computes':>20} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    bypass = {"ttl": TTL, "status": "panic", "backend": BACKEND_SECONDS, "options": {}}
    one = steady(args.port, bypass, 1, args.rate * n, args.seconds)  # the same load on one process
    many = steady(args.port, bypass, n, args.rate, args.seconds)
    row("bypass, 1 process", one)
    row(f"bypass, {n} processes", many)
    print(f"bypass: the fleet's computations / one process's: {many['computes'] / one['computes']:.2f}")

    print(f"\nslow backend: a computation takes {SLOW_SECONDS:g} s (the lease: 5 s), TTL {SLOW_TTL:g} s")
    slow = {"ttl": SLOW_TTL, "status": "normal", "backend": SLOW_SECONDS, "options": {}}
    result = steady(args.port, slow, n, args.rate, args.seconds)
    print(
        f"computations fleet-wide: {result['computes']} for 1 expiry (the cold start); "
        f"p50 {result['p50 ms']:.0f} ms, p99 {result['p99 ms']:.0f} ms",
        flush=True,
    )

    print(f"\nfailing backend: the computation raises after {FAIL_AFTER:g} s; {n} processes call at once")
    result = failing(args.port, n)
    print(
        f"computations per round: {result['computes per round']:.1f}; every waiting process had its "
        f"exception {result['slowest waiter after the holder failed (ms)']:.0f} ms after the holder's "
        f"failure at the latest (median round {result['median round (ms)']:.0f} ms; goal: one "
        f"computation, {FAIL_AFTER * 1000:g} ms, + 100 ms)"
    )


if __name__ == "__main__":
    main()
