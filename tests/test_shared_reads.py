"""Reads of a shared store under a burst, and entries that come back older (real Redis, memcached)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiocache import MemcachedCache, RedisCache

from tests.logs import captured_logs
from vix_ttl import VIXCircuitBreaker, vix_cached
from vix_ttl._keys import wire_key
from vix_ttl.testing import FakeClock

SECRET = "a secret of the service's own"


def process(
    cache: Any,
    clock: FakeClock,
    namespace: str,
    computed: Iterator[Any],
    *,
    ttl: float | None = 60,
    secret: str | None = SECRET,
) -> Any:
    """A function as one process has it over *cache*: its own breaker, its own memory of the
    values it has seen; each computation returns the next of *computed*."""

    @vix_cached(
        ttl,
        status=lambda *args: "normal",
        cache=cache,
        breaker=VIXCircuitBreaker(clock=clock),
        clock=clock,
        secret=secret,
        namespace=namespace,
    )
    async def function(*args: Any) -> Any:
        return next(computed)

    return function


async def gets(port: int) -> int:
    """How many GET commands clients have sent the Redis server so far: its count of GETs,
    less those its scripts ran (each lease script reads the lease once)."""
    client = aioredis.Redis(port=port)
    stats = await client.info("commandstats")
    await client.aclose()
    calls = {
        name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("get", "eval", "evalsha")
    }
    return calls["get"] - calls["eval"] - calls["evalsha"]


async def test_a_thousand_callers_of_a_cold_key_make_two_reads_and_one_computation(redis_port: int) -> None:
    # A pool of 10 connections: 0.2 sent one read per caller; redis-py's pool raised at its
    # size, and every caller it refused computed for itself.
    cache = RedisCache(
        endpoint="127.0.0.1", port=redis_port, namespace=f"burst-{uuid.uuid4().hex[:8]}:", pool_max_size=10
    )
    computes: list[int] = []

    @vix_cached(60, status=lambda match: "normal", cache=cache, breaker=VIXCircuitBreaker())
    async def odds(match: int) -> str:
        computes.append(match)
        await asyncio.sleep(0.05)
        return "1.85"

    before = await gets(redis_port)
    values = await asyncio.gather(*(odds(7) for _ in range(1000)))
    reads = await gets(redis_port) - before
    assert values == ["1.85"] * 1000
    assert computes == [7]
    assert reads <= 2  # one for the burst, one more look by the lease holder
    info = odds.cache_info()
    assert (info.misses, info.coalesced, info.errors) == (1, 999, 0)
    await cache.close()


async def test_a_full_connection_pool_is_waited_for_not_turned_into_computations(redis_port: int) -> None:
    cache = RedisCache(
        endpoint="127.0.0.1", port=redis_port, namespace=f"pool-{uuid.uuid4().hex[:8]}:", pool_max_size=5
    )
    computes: list[int] = []

    @vix_cached(60, status=lambda match: "normal", cache=cache, breaker=VIXCircuitBreaker())
    async def odds(match: int) -> int:
        computes.append(match)
        return match

    matches = range(300)  # 300 keys at once over 5 connections
    assert await asyncio.gather(*(odds(m) for m in matches)) == list(matches)
    assert await asyncio.gather(*(odds(m) for m in matches)) == list(matches)
    info = odds.cache_info()
    assert (info.misses, info.hits, info.errors) == (300, 300, 0)
    assert sorted(computes) == list(matches)
    await cache.close()


@pytest.mark.parametrize("kind", ["redis", "memcached"])
async def test_an_older_entry_copied_back_is_never_served_after_a_newer_one(
    kind: str, request: pytest.FixtureRequest
) -> None:
    port = request.getfixturevalue(f"{kind}_port")
    clock = FakeClock(1_000_000)
    cls: Any = RedisCache if kind == "redis" else MemcachedCache
    cache = cls(endpoint="127.0.0.1", port=port, namespace=f"replay-{uuid.uuid4().hex[:8]}:")
    balance = process(cache, clock, "balance", iter(range(1, 100)))
    assert await balance(1) == 1
    key = cache.build_key(wire_key("balance", ((1,), {})))
    saved = await raw(cache, key, None)  # signed and valid: anyone with write access can keep it
    clock.advance(1)
    assert await balance.invalidate(1)
    assert await balance(1) == 2
    await raw(cache, key, saved)  # copied back: still within its TTL, still signed
    clock.advance(1)
    assert await balance(1) == 3  # written before its key's tombstone: a miss (0.2 served 1 again)
    assert await balance(1) == 3
    info = balance.cache_info()
    assert (info.misses, info.rejected, info.hits) == (2, 1, 1)
    await cache.close()


@pytest.mark.parametrize(
    ("kind", "how"),
    [
        ("redis", "invalidate"),
        ("redis", "cache_clear"),
        ("native", "invalidate"),
        ("native", "cache_clear"),
        ("memcached", "invalidate"),  # memcached cannot clear by prefix
    ],
)
async def test_an_entry_copied_back_after_its_key_was_dropped_is_refused_by_every_process(
    kind: str, how: str, request: pytest.FixtureRequest
) -> None:
    # 0.2: after an invalidate() of a ttl=None entry and 30 days, replaying it served it again.
    port = request.getfixturevalue("memcached_port" if kind == "memcached" else "redis_port")
    clock = FakeClock(1_000_000)
    namespace, computed = f"grants-{uuid.uuid4().hex[:8]}", iter([{"admin": True}, {"admin": False}])
    makers: dict[str, Callable[[], Any]] = {
        "redis": lambda: RedisCache(endpoint="127.0.0.1", port=port, namespace=f"{namespace}:"),
        "memcached": lambda: MemcachedCache(endpoint="127.0.0.1", port=port, namespace=f"{namespace}:"),
        "native": lambda: aioredis.Redis(port=port),
    }
    cache = makers[kind]()

    def grants() -> Any:  # never expires
        return process(cache, clock, namespace, computed, ttl=None)

    key = wire_key(namespace, ((1,), {}))
    stored = key if kind == "native" else cache.build_key(key)
    client = cache if kind == "native" else cache.client
    one = grants()
    assert await one(1) == {"admin": True}
    saved = await client.get(stored)  # signed and valid: anyone with write access can keep it
    clock.advance(30 * 24 * 3600)
    await (one.invalidate(1) if how == "invalidate" else one.cache_clear())
    await client.set(stored, saved)  # copied back
    other = grants()  # a process that never saw it go
    assert await other(1) == {"admin": False}
    assert other.cache_info().rejected == 1
    assert await other(1) == {"admin": False} and other.cache_info().hits == 1  # what replaced it is served
    await (cache.aclose() if kind == "native" else cache.close())


async def raw(cache: Any, key: bytes | str, value: bytes | None) -> Any:
    """Read *key* as the server holds it (*value* None), or write *value* there as it is."""
    if value is None:
        return await cache.client.get(key)
    return await cache.client.set(key, value)


@pytest.mark.parametrize("kind", ["redis", "memcached"])
async def test_processes_whose_clocks_disagree_still_share_entries(
    kind: str, request: pytest.FixtureRequest
) -> None:
    # Monotonic reads place each value after every value of its key its writer has seen,
    # so a process 3 s ahead and one on time never take each other's entries for older.
    port = request.getfixturevalue(f"{kind}_port")
    cls: Any = RedisCache if kind == "redis" else MemcachedCache
    namespace = f"skew-{uuid.uuid4().hex[:8]}:"
    computes = {"ahead": 0, "on time": 0}
    now = FakeClock(1_000_000)

    def process(name: str, skew: float) -> Any:
        @vix_cached(
            60,
            status=lambda match: "normal",
            cache=cls(endpoint="127.0.0.1", port=port, namespace=namespace),
            breaker=VIXCircuitBreaker(),
            namespace="odds",
            clock=lambda: now() + skew,
        )
        async def odds(match: int) -> str:
            computes[name] += 1
            return name

        return odds

    ahead, on_time = process("ahead", 3.0), process("on time", 0.0)
    for _ in range(50):
        await ahead(1)
        await on_time(1)
        now.advance(0.1)
    assert computes["ahead"] + computes["on time"] <= 3  # 0.3's first monotonic reads: 100
    await ahead.cache.close()
    await on_time.cache.close()


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_a_clock_stepped_back_does_not_turn_caching_off(
    store: str, request: pytest.FixtureRequest
) -> None:
    wall = {"now": 1_000_000.0}  # a wall clock, which NTP may step back (a FakeClock never goes back)
    cache: Any = None
    if store == "redis":
        port = request.getfixturevalue("redis_port")
        cache = RedisCache(endpoint="127.0.0.1", port=port, namespace=f"step-{uuid.uuid4().hex[:8]}:")
    computes: list[int] = []

    @vix_cached(
        60, status=lambda match: "normal", cache=cache, breaker=VIXCircuitBreaker(), clock=lambda: wall["now"]
    )
    async def odds(match: int) -> int:
        computes.append(match)
        return len(computes)

    assert await odds(1) == 1
    wall["now"] -= 30  # NTP steps the wall clock back 30 s
    assert await odds(1) == 2  # its entry is 30 s in the future: no age to trust, computed
    assert [await odds(1) for _ in range(20)] == [2] * 20  # and cached again at once
    if cache is not None:
        await cache.close()


async def test_a_bypassed_value_that_cannot_be_stored_still_keeps_the_old_one_away(redis_port: int) -> None:
    cache = RedisCache(endpoint="127.0.0.1", port=redis_port, namespace=f"unstorable-{uuid.uuid4().hex[:8]}:")
    state: dict[str, Any] = {"status": "normal", "value": [1, 2]}

    @vix_cached(60, status=lambda match: state["status"], cache=cache, breaker=VIXCircuitBreaker())
    async def odds(match: int) -> Any:
        return state["value"]

    assert await odds(1) == [1, 2]  # calm: stored
    state.update(status="panic", value=(3, 4))  # JSON cannot keep a tuple: served, not stored
    with captured_logs():
        assert await odds(1) == (3, 4)
    state["status"] = "normal"
    assert await odds(1) == (3, 4)  # computed again: the calm [1, 2] never comes back
    await cache.close()


async def test_an_invalidation_from_a_host_whose_clock_is_behind_still_outlives_the_entry(
    redis_port: int,
) -> None:
    client = aioredis.Redis(port=redis_port)
    namespace, computed = f"skew-{uuid.uuid4().hex[:8]}", iter(range(1, 100))

    def price(clock: FakeClock) -> Any:
        return process(client, clock, namespace, computed)

    writer, admin = price(FakeClock(1000.0)), price(FakeClock(970.0))  # the admin's host: 30 s behind
    assert await writer("x") == 1
    key = wire_key(namespace, (("x",), {}))
    saved = await client.get(key)
    assert saved is not None
    assert await admin.invalidate("x")
    await client.set(key, saved)  # copied back
    reader = price(FakeClock(1006.0))  # a fresh process, in step with the writer
    assert await reader("x") == 2 and reader.cache_info().rejected == 1
    await client.aclose()


async def test_a_forged_place_far_ahead_never_stops_a_process_caching(redis_port: int) -> None:
    # Without a secret anyone may write any entry; 0.3's first cut remembered a planted place
    # of 1.8e308, and placed every later write of the key at inf, which every reader refused.
    client = aioredis.Redis(port=redis_port)
    clock, computed = FakeClock(1000.0), iter(range(1, 100))
    namespace = f"ahead-{uuid.uuid4().hex[:8]}"

    def price() -> Any:
        return process(client, clock, namespace, computed, secret=None)

    one = price()
    assert await one("x") == 1
    key = wire_key(namespace, (("x",), {}))
    far = "1.7976931348623157e+308"
    await client.set(f"{{{key}}}|gone", f"vix_ttl:2|-|1000.0|60.0|60.0|gone|0.0|{far}\n")  # a tombstone
    clock.advance(1)
    await one("x")
    await client.delete(f"{{{key}}}|gone")
    await client.set(key, f"vix_ttl:2|-|1000.0|60.0|60.0|normal|0.0|{far}\n1")  # an entry
    clock.advance(1)
    await one("x")
    clock.advance(61)
    written = await one("x")
    # What it writes now is kept: served to it again, and to a process that never saw the forgeries.
    assert await one("x") == written and await price()("x") == written
    await client.aclose()
