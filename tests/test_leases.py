"""Single flight across processes when the backend is slow or failing, on real Redis and memcached.

Each "process" is a decorated function of its own (its own engine, in-flight sharing and
cache client) over one shared server, as separate processes would be; the lease time is
shortened so that a computation can outlast it within a test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import pytest
from aiocache import MemcachedCache, RedisCache, SimpleMemoryCache

from vix_ttl import VIXCircuitBreaker, vix_cached
from vix_ttl import _lease as lease_module
from vix_ttl._keys import digest, wire_key

LEASE = 0.6  # seconds, for these tests: memcached rounds it up to 1 s


@pytest.fixture(autouse=True)
def _short_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lease_module, "LEASE_SECONDS", LEASE)


class Fleet:
    """Processes sharing one store: each a decorated ``odds(match)`` over a client of its own."""

    def __init__(self, kind: str, port: int) -> None:
        self.kind, self.port = kind, port
        self.namespace = f"lease-{uuid.uuid4().hex[:8]}:"
        self.caches: list[Any] = []
        self.events: list[tuple[str, int]] = []  # ("start" | "end" | "fail", process)
        self.status = "normal"
        self.shared_memory = SimpleMemoryCache(namespace=self.namespace)

    def cache(self) -> Any:
        if self.kind == "memory":
            return self.shared_memory
        cls = RedisCache if self.kind == "redis" else MemcachedCache
        cache = cls(endpoint="127.0.0.1", port=self.port, namespace=self.namespace, timeout=5)
        self.caches.append(cache)
        return cache

    def process(
        self, n: int, compute: Callable[[int], Awaitable[Any]], **options: Any
    ) -> Callable[[int], Coroutine[Any, Any, Any]]:
        @vix_cached(
            60,
            status=lambda match: self.status,
            cache=self.cache(),
            namespace="odds",
            breaker=VIXCircuitBreaker(),
            **options,
        )
        async def odds(match: int) -> Any:
            self.events.append(("start", n))
            try:
                value = await compute(n)
            except Exception:
                self.events.append(("fail", n))
                raise
            self.events.append(("end", n))
            return value

        return odds

    def lease_key(self, match: int) -> str:
        """The lease of odds(match), as the backend stores it (the wire key's digest, namespaced)."""
        cache = self.caches[0] if self.caches else self.shared_memory
        built = cache.build_key("vix_ttl:lease" + digest(wire_key("odds", ((match,), {}))))
        return built.decode() if isinstance(built, bytes) else str(built)

    async def raw(self, key: str) -> Any:
        """A key as the server holds it, read by a client of the test's own."""
        cache = self.caches[0] if self.caches else self.shared_memory
        if self.kind == "memory":
            return cache._cache.get(key)
        return await cache.client.get(key.encode() if self.kind == "memcached" else key)

    async def close(self) -> None:
        for cache in self.caches:
            await cache.close()


@pytest.fixture(params=["redis", "memcached", "memory"])
async def fleet(request: pytest.FixtureRequest) -> AsyncIterator[Fleet]:
    port = 0
    if request.param == "redis":
        port = request.getfixturevalue("redis_port")
    elif request.param == "memcached":
        port = request.getfixturevalue("memcached_port")
    made = Fleet(request.param, port)
    yield made
    await made.close()


async def test_a_computation_longer_than_the_lease_is_computed_once(fleet: Fleet) -> None:
    async def slow(n: int) -> str:
        await asyncio.sleep(3 * LEASE)  # the holder renews its lease meanwhile
        return f"computed by {n}"

    processes = [fleet.process(n, slow) for n in range(4)]
    first = asyncio.create_task(processes[0](7))
    await asyncio.sleep(0.1)  # the first process holds the lease
    values = await asyncio.gather(first, *(p(7) for p in processes[1:]))
    assert values == ["computed by 0"] * 4
    assert fleet.events == [("start", 0), ("end", 0)]
    assert [p.cache_info().coalesced for p in processes] == [0, 1, 1, 1]  # type: ignore[attr-defined]


async def test_a_holders_failure_reaches_its_waiters_at_once(fleet: Fleet) -> None:
    release = asyncio.Event()

    async def failing(n: int) -> str:
        if n == 0:
            await release.wait()
        await asyncio.sleep(0.2)  # the backend takes a while to fail
        raise ConnectionError(f"backend down, seen by {n}")

    processes = [fleet.process(n, failing) for n in range(4)]
    calls = [asyncio.create_task(processes[0](7))]
    await asyncio.sleep(0.1)  # the first process holds the lease
    calls += [asyncio.create_task(p(7)) for p in processes[1:]]
    await asyncio.sleep(0.1)  # the others wait on it
    release.set()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert [str(error) for error in outcomes] == [f"backend down, seen by {n}" for n in range(4)]
    # The waiters computed together once the holder failed: not one after another, a lease apart.
    waiters = fleet.events[2:]
    assert fleet.events[:2] == [("start", 0), ("fail", 0)]
    assert sorted(waiters[:3]) == [("start", 1), ("start", 2), ("start", 3)]


async def test_the_lease_is_gone_once_the_entry_is_written(fleet: Fleet) -> None:
    async def compute(n: int) -> str:
        return "odds"

    odds = fleet.process(0, compute)
    assert await odds(7) == "odds"
    assert await fleet.raw(fleet.lease_key(7)) is None  # memcached too: never left to expire


async def test_a_planted_lease_delays_a_key_once_never_forever(fleet: Fleet) -> None:
    async def compute(n: int) -> str:
        return "odds"

    odds = fleet.process(0, compute)
    planted = fleet.lease_key(7)
    if fleet.kind == "memory":
        fleet.shared_memory._cache[planted] = "not a lease"  # no expiry
    else:
        await fleet.caches[0].client.set(planted.encode() if fleet.kind == "memcached" else planted, b"x")
    # Not forever: one lease time after it is first seen, it has lapsed.
    assert await asyncio.wait_for(odds(7), timeout=LEASE + 5) == "odds"
    assert await fleet.raw(planted) is None  # taken over, then let go: the next miss does not wait


async def test_bypassed_calls_share_one_computation_across_processes(fleet: Fleet) -> None:
    computed = iter(range(100))

    async def compute(n: int) -> str:
        await asyncio.sleep(0.2)
        return f"odds #{next(computed)}"

    fleet.status = "panic"  # NORMAL mode: a bypass, written through
    processes = [fleet.process(n, compute) for n in range(4)]
    first = asyncio.create_task(processes[0](7))
    await asyncio.sleep(0.05)
    values = await asyncio.gather(first, *(p(7) for p in processes[1:]))
    assert values == ["odds #0"] * 4  # the holder's value reached every process waiting on it
    assert [event for event, _ in fleet.events] == ["start", "end"]
    # A bypass arriving after that computation ended never receives it: it computes anew.
    assert await processes[1](7) == "odds #1"


async def test_a_computation_calling_itself_computes_instead_of_waiting_on_its_own_lease(
    fleet: Fleet,
) -> None:
    attempts: list[int] = []

    async def retrying(n: int) -> str:
        attempts.append(n)
        if len(attempts) == 1:
            return str(await odds(7))  # the retry-by-recursion pattern: same function, same key
        return "odds"

    odds = fleet.process(0, retrying)
    # The outer call holds the lease and renews it: a nested call waiting on it would wait forever.
    assert await asyncio.wait_for(odds(7), timeout=10 * LEASE) == "odds"
    assert attempts == [0, 0]


async def test_a_planted_lease_that_keeps_changing_lapses_all_the_same(fleet: Fleet) -> None:
    async def compute(n: int) -> str:
        return "odds"

    odds = fleet.process(0, compute)
    planted = fleet.lease_key(7)
    stop = asyncio.Event()

    async def churn() -> None:  # a value every 50 ms, shaped like a lease: never a renewal
        n = 0
        while not stop.is_set():
            n += 7
            value = f"0123456789abcdef.{n}"
            if fleet.kind == "memory":
                fleet.shared_memory._cache[planted] = value
            else:
                await fleet.caches[0].client.set(
                    planted.encode() if fleet.kind == "memcached" else planted, value.encode()
                )
            await asyncio.sleep(0.05)

    churning = asyncio.create_task(churn())
    try:
        assert await asyncio.wait_for(odds(7), timeout=4 * LEASE + 5) == "odds"  # 0.3's first leases: never
    finally:
        stop.set()
        await churning


async def test_a_slow_but_healthy_server_never_makes_a_waiter_compute_twice(redis_port: int) -> None:
    class Slow(RedisCache):  # type: ignore[misc]
        async def _get(self, *args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0.005)  # every read takes 5 ms: slow, and healthy
            return await super()._get(*args, **kwargs)

    namespace, computes = f"slow-{uuid.uuid4().hex[:8]}:", []

    def process(n: int) -> Any:
        @vix_cached(
            60,
            status=lambda match: "normal",
            cache=Slow(endpoint="127.0.0.1", port=redis_port, namespace=namespace, timeout=0.1),
            namespace="odds",
            breaker=VIXCircuitBreaker(),
        )
        async def odds(match: int) -> str:
            computes.append(n)
            await asyncio.sleep(2 * LEASE)  # the waiter polls 40 times meanwhile: 200 ms of reads
            return f"computed by {n}"

        return odds

    first, second = process(0), process(1)
    holder = asyncio.create_task(first(7))
    await asyncio.sleep(0.05)
    assert await second(7) == "computed by 0"  # 0.3's first leases charged every poll to one timeout
    assert await holder == "computed by 0"
    assert computes == [0] and second.cache_info().errors == 0
    await first.cache.close()
    await second.cache.close()


def test_a_waiter_held_up_past_renewals_still_sees_its_holder_alive() -> None:
    # Under load a waiter's own loop may stall longer than a renewal: it then sees the count
    # two up, not one. 0.3's first cut took that for a dead holder, took the lease over, and
    # computed the key a second time (a cluster fleet on two cores, about one run in three).
    now = [0.0]
    waiting = lease_module._Waiting(lambda: now[0])
    assert waiting.alive("0123456789abcdef.0")
    now[0] = 5.5  # stalled: the holder renewed at 2.5 s and 5 s meanwhile
    assert waiting.alive("0123456789abcdef.2")
    now[0] = 10.0
    assert waiting.alive("0123456789abcdef.3")
    # A value that jumps faster than renewals can is no sign of life: it lapses a lease after.
    churned = lease_module._Waiting(lambda: now[0])
    assert churned.alive("0123456789abcdef.0")
    for step in range(1, 60):
        now[0] += 0.1
        churned.alive(f"0123456789abcdef.{7 * step}")
    assert not churned.alive("0123456789abcdef.420")
