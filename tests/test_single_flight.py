"""One computation per key across processes: a lease in the shared store (real Redis and memcached)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import uuid
from typing import Any

import pytest
import redis
from aiocache import MemcachedCache, RedisCache

from tests.harness import run_fleet
from vix_ttl import VIXCircuitBreaker, vix_cached
from vix_ttl._lease import LEASE_SECONDS

WORKERS = 4


def cache_of(kind: str, port: int, namespace: str) -> Any:
    cls = RedisCache if kind == "redis" else MemcachedCache
    return cls(endpoint="127.0.0.1", port=port, namespace=namespace, timeout=10)


def worker(  # noqa: PLR0917 - a process target takes its arguments by position
    kind: str, port: int, redis_port: int, namespace: str, barrier: Any, results: Any
) -> None:
    """A process of the fleet: it calls the hot key once, when every worker is ready."""
    counter = redis.Redis(port=redis_port)

    @vix_cached(
        60, status=lambda match: "normal", cache=cache_of(kind, port, namespace), breaker=VIXCircuitBreaker()
    )
    async def odds(match: int) -> str:
        computes = counter.incr(f"{namespace}computes")  # counted outside the library
        await asyncio.sleep(0.3)  # the backend: slow enough for every worker to arrive
        return f"odds #{computes}"

    async def main() -> None:
        barrier.wait(60)
        value = await odds(42)
        results.put((os.getpid(), value, odds.cache_info().counts))

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_processes_sharing_a_store_compute_a_key_once(
    kind: str, redis_port: int, memcached_port: int
) -> None:
    namespace = f"sf-{uuid.uuid4().hex[:8]}:"
    port = redis_port if kind == "redis" else memcached_port
    outcomes = run_fleet(worker, kind, port, redis_port, namespace, processes=WORKERS)
    assert redis.Redis(port=redis_port).get(f"{namespace}computes") == b"1"
    assert {value for _, value, _ in outcomes} == {"odds #1"}
    infos = [info for _, _, info in outcomes]
    assert sorted(info["misses"] for info in infos) == [0] * (WORKERS - 1) + [1]
    assert sum(info["coalesced"] for info in infos) == WORKERS - 1  # another process's result


def holder(redis_port: int, namespace: str, leased: Any) -> None:
    """A process that takes the lease and dies before it writes the entry."""
    counter = redis.Redis(port=redis_port)

    @vix_cached(
        60, status=lambda match: "normal", cache=cache_of("redis", redis_port, namespace), namespace="odds"
    )
    async def odds(match: int) -> str:
        counter.incr(f"{namespace}computes")
        leased.set()
        await asyncio.sleep(3600)  # killed long before
        return "never"

    asyncio.run(odds(42))


async def test_a_killed_lease_holder_delays_the_others_one_lease_at_most(redis_port: int) -> None:
    namespace = f"sf-{uuid.uuid4().hex[:8]}:"
    context = multiprocessing.get_context("spawn")
    leased = context.Event()
    process = context.Process(target=holder, args=(redis_port, namespace, leased))
    process.start()
    assert await asyncio.to_thread(leased.wait, 60)
    assert process.pid is not None
    os.kill(process.pid, signal.SIGKILL)  # mid-computation, holding the lease
    process.join(60)
    counter = redis.Redis(port=redis_port)
    cache = cache_of("redis", redis_port, namespace)

    @vix_cached(60, status=lambda match: "normal", cache=cache, namespace="odds")  # the holder's function
    async def odds(match: int) -> str:
        counter.incr(f"{namespace}computes")
        return "computed by the survivor"

    # It waits for the dead holder's entry until the lease runs out, then computes: never forever.
    assert await asyncio.wait_for(odds(42), timeout=LEASE_SECONDS + 60) == "computed by the survivor"
    assert counter.get(f"{namespace}computes") == b"2"
    assert odds.cache_info().misses == 1
    await cache.close()


async def test_a_holder_that_fails_hands_the_lease_on_at_once(redis_port: int) -> None:
    namespace = f"sf-{uuid.uuid4().hex[:8]}:"
    holding, release = asyncio.Event(), asyncio.Event()

    def process(fails: bool) -> Any:  # two engines, two sets of flights: two processes on one Redis
        @vix_cached(
            60, status=lambda match: "normal", cache=cache_of("redis", redis_port, namespace), namespace="o"
        )
        async def odds(match: int) -> str:
            if fails:
                holding.set()
                await release.wait()
                raise ConnectionError("the holder's backend call failed")
            return "computed by the second process"

        return odds

    first, second = process(fails=True), process(fails=False)
    holder_call = asyncio.create_task(first(42))
    await holding.wait()  # the first process holds the lease
    waiter = asyncio.create_task(second(42))
    await asyncio.sleep(0.05)  # the second process finds the key leased and waits on it
    release.set()
    with pytest.raises(ConnectionError):
        await holder_call
    # The lease went without an entry: the waiter takes it over, well before it would expire.
    assert await asyncio.wait_for(waiter, timeout=LEASE_SECONDS / 2) == "computed by the second process"
    assert second.cache_info().misses == 1
