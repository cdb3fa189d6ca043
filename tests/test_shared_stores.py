"""Shared stores as an adversary sees them: anyone can write to the cache server.

Every test here writes to a real Redis or memcached what an attacker (or a
careless neighbour) could, then checks that vix_ttl neither runs it nor serves
it, and that the caller's call still succeeds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import decimal
import enum
import gc
import math
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from aiocache import MemcachedCache, RedisCache, SimpleMemoryCache, caches
from aiocache import cached as aiocache_cached
from aiocache.serializers import BaseSerializer, JsonSerializer, MsgPackSerializer, PickleSerializer

from tests.conftest import require_binary
from tests.logs import captured_logs
from tests.test_faults import ServerProcess
from vix_ttl import VIXCircuitBreaker, vix_cached
from vix_ttl.aiocache import VixPlugin, VixSerializer, cached
from vix_ttl.testing import FakeClock

SECRET = "the-current-secret-0123456789"
OLD_SECRET = "the-retired-secret-0123456789"


class Plant:
    """A pickle that, when loaded, creates a file: proof that a reader ran an attacker's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (Path.touch, (self.marker,))


def planted_entries(marker: Path, stored_at: float) -> list[bytes]:
    """What an attacker would write: raw pickles, and pickles in every envelope vix_ttl has known."""
    payload = pickle.dumps(Plant(marker))
    return [
        payload,
        f"vix_ttl:1|{stored_at}|3600.0|3600.0|normal\n".encode() + payload,  # 0.1.0's envelope
        f"vix_ttl:2|-|{stored_at}|3600.0|3600.0|normal|0.0\n".encode() + payload,  # unsigned
        f"vix_ttl:2|{'A' * 43}|{stored_at}|3600.0|3600.0|normal|0.0\n".encode() + payload,  # forged
    ]


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "attacker-code-ran"


@pytest.fixture
def raw_redis(redis_port: int) -> redis.Redis:
    client = redis.Redis(port=redis_port)
    client.flushdb()
    return client


def redis_cache(port: int, **kwargs: Any) -> RedisCache:
    return RedisCache(endpoint="127.0.0.1", port=port, **kwargs)


# -- 1. no code execution from a shared entry --------------------------------------------------


def test_the_default_serializer_never_unpickles(marker: Path) -> None:
    clock = FakeClock()  # every planted entry is fresh: only the content can stop it
    serializer = VixSerializer(breaker=VIXCircuitBreaker(clock=clock), clock=clock)
    assert isinstance(serializer.inner, JsonSerializer)
    for entry in planted_entries(marker, 0.0):
        assert serializer.loads(entry) is None
        assert serializer.loads(entry.decode("latin-1")) is None
    assert not marker.exists()
    assert serializer.rejected == 8


async def test_the_readme_config_dict_never_runs_a_planted_pickle(
    redis_port: int, raw_redis: redis.Redis, marker: Path
) -> None:
    caches.set_config(
        {
            "default": {
                "cache": "aiocache.RedisCache",
                "endpoint": "127.0.0.1",
                "port": redis_port,
                "serializer": {"class": "vix_ttl.aiocache.VixSerializer"},
                "plugins": [{"class": "vix_ttl.aiocache.VixPlugin"}],
            }
        }
    )
    try:
        cache = caches.get("default")
        for entry in planted_entries(marker, time.time()):
            raw_redis.set("match:42", entry)
            # A pickle is not UTF-8: aiocache's backend refuses to decode it for the JSON
            # serializer before any serializer sees it. Either way nothing is unpickled.
            with contextlib.suppress(UnicodeDecodeError):
                assert await cache.get("match:42") is None
            raw_redis.set("match:42", entry.decode("latin-1").encode())  # the same, as valid UTF-8
            assert await cache.get("match:42") is None
        await cache.close()
    finally:
        caches.set_config({"default": {"cache": "aiocache.SimpleMemoryCache"}})
    assert not marker.exists()


class MyPickle(BaseSerializer):  # type: ignore[misc]
    """A user's own pickling serializer: 0.2 took it for safe, and ran a planted payload."""

    DEFAULT_ENCODING = None

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value)

    def loads(self, value: bytes | None) -> Any:
        return None if value is None else pickle.loads(value)  # the attack under test


class MyJson(JsonSerializer):  # type: ignore[misc]
    """A subclass of a safe serializer, whose author states it stays safe."""

    runs_code = False


@pytest.mark.parametrize(
    "configuration", ["default", "pickle+secret", "vix+pickle+secret", "mine+secret", "vix+mine+secret"]
)
async def test_vix_cached_never_runs_a_planted_pickle(
    redis_port: int, raw_redis: redis.Redis, marker: Path, configuration: str
) -> None:
    serializer, secret = {
        "default": (VixSerializer(), None),
        "pickle+secret": (PickleSerializer(), SECRET),
        "vix+pickle+secret": (VixSerializer(PickleSerializer(), secret=SECRET), None),
        "mine+secret": (MyPickle(), SECRET),
        "vix+mine+secret": (VixSerializer(MyPickle(), secret=SECRET), None),
    }[configuration]
    cache = redis_cache(redis_port, serializer=serializer)

    @vix_cached(60, status=lambda match: "normal", cache=cache, secret=secret, namespace="odds")
    async def price(match: int) -> str:
        return "computed"

    assert await price(42) == "computed"  # a real entry, to learn the wire key from
    (wire_key,) = raw_redis.keys("*")
    for entry in planted_entries(marker, time.time()):
        raw_redis.set(wire_key, entry)
        assert await price(42) == "computed"
    assert not marker.exists()
    assert price.cache_info().rejected == 4
    await cache.close()


@pytest.mark.parametrize("serializer", [PickleSerializer(), MyPickle(), type("Sub", (JsonSerializer,), {})()])
def test_a_serializer_not_known_to_be_safe_needs_a_secret(serializer: Any) -> None:
    name = type(serializer).__qualname__
    with pytest.raises(
        ValueError, match=rf"{name} may run code.*secret=.*{name} never runs code.*runs_code = False"
    ):
        VixSerializer(serializer)


async def test_a_serializer_declared_safe_by_its_author_needs_no_secret(redis_port: int) -> None:
    VixSerializer(MyJson())
    cache = redis_cache(redis_port, serializer=MyJson())

    @vix_cached(60, status=lambda: "normal", cache=cache, namespace="mine")
    async def price() -> int:
        return 1

    assert await price() == await price() == 1 and price.cache_info().hits == 1
    await cache.close()


def test_vix_cached_over_a_users_pickling_serializer_needs_a_secret(redis_port: int) -> None:
    with pytest.raises(ValueError, match=r"vix_cached\(.*price\): MyPickle may run code.*secret="):

        @vix_cached(60, status=lambda: "normal", cache=redis_cache(redis_port, serializer=MyPickle()))
        async def price() -> int:
            return 1


def test_vix_cached_over_a_cache_that_pickles_needs_a_secret(redis_port: int) -> None:
    with pytest.raises(ValueError, match=r"vix_cached\(.*price\): PickleSerializer may run code.*secret="):

        @vix_cached(60, status=lambda: "normal", cache=redis_cache(redis_port, serializer=PickleSerializer()))
        async def price() -> int:
            return 1


# -- 2. forged, moved, unsigned, truncated entries are misses ----------------------------------


@pytest.fixture
async def signed(redis_port: int, raw_redis: redis.Redis) -> AsyncIterator[Any]:
    cache = redis_cache(redis_port, serializer=PickleSerializer())
    computes: list[int] = []

    @vix_cached(60, status=lambda match: "normal", cache=cache, secret=SECRET, namespace="odds")
    async def price(match: int) -> dict[str, Any]:
        computes.append(match)
        return {"match": match, "odds": 1.5 + match}

    price.computes = computes  # type: ignore[attr-defined]
    yield price
    await cache.close()


def key_of(raw_redis: redis.Redis, match: int) -> bytes:
    keys: list[bytes] = raw_redis.keys("*")  # type: ignore[assignment]
    (key,) = [k for k in keys if f"i{match})".encode() in k]
    return key


def raw(raw_redis: redis.Redis, key: bytes | str) -> bytes:
    value = raw_redis.get(key)
    assert isinstance(value, bytes)
    return value


async def test_a_signed_entry_is_served(signed: Any) -> None:
    first = await signed(1)
    assert await signed(1) == first
    assert signed.computes == [1]
    assert signed.cache_info().hits == 1


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda entry: entry[:-1] + bytes([entry[-1] ^ 1]), id="payload-bit-flipped"),
        pytest.param(lambda entry: entry.replace(b"|60.0|", b"|6000.0|", 1), id="ttl-stretched"),
        pytest.param(lambda entry: entry[: len(entry) // 2], id="truncated"),
        pytest.param(lambda entry: b"vix_ttl:2|-|" + entry.split(b"|", 2)[2], id="signature-removed"),
        pytest.param(lambda entry: b"", id="emptied"),
    ],
)
async def test_a_tampered_entry_is_a_miss_and_is_overwritten(
    signed: Any, raw_redis: redis.Redis, tamper: Callable[[bytes], bytes]
) -> None:
    await signed(1)
    key = key_of(raw_redis, 1)
    raw_redis.set(key, tamper(raw(raw_redis, key)))
    with captured_logs() as logs:
        assert await signed(1) == {"match": 1, "odds": 2.5}
        assert await signed(1) == {"match": 1, "odds": 2.5}  # overwritten: a hit again
    assert signed.computes == [1, 1]
    assert (signed.cache_info().rejected, signed.cache_info().hits) == (1, 1)
    assert [log["event"] for log in logs if "rejected" in log["event"]] == ["cache_entry_rejected"]


async def test_an_entry_moved_to_another_key_is_a_miss(signed: Any, raw_redis: redis.Redis) -> None:
    await signed(1)
    await signed(2)
    raw_redis.set(key_of(raw_redis, 2), raw(raw_redis, key_of(raw_redis, 1)))  # 1's odds under 2
    assert await signed(2) == {"match": 2, "odds": 3.5}  # not match 1's value
    assert signed.cache_info().rejected == 1


async def test_rejections_are_logged_once_per_burst(signed: Any, raw_redis: redis.Redis) -> None:
    for match in range(5):
        await signed(match)
    with captured_logs() as logs:
        for match in range(5):
            raw_redis.set(key_of(raw_redis, match), b"vix_ttl:2|forged")
            await signed(match)
    assert [log["event"] for log in logs] == ["cache_entry_rejected"]
    assert signed.cache_info().rejected == 5


async def test_secrets_rotate_the_first_signs_every_one_verifies(
    redis_port: int, raw_redis: redis.Redis
) -> None:
    def make(secret: Any) -> Any:
        @vix_cached(
            60, status=lambda: "normal", cache=redis_cache(redis_port), secret=secret, namespace="rot"
        )
        async def price() -> str:
            return f"signed with {secret}"

        return price

    old, rotating, new_only = make(OLD_SECRET), make([SECRET, OLD_SECRET]), make(SECRET)
    await old()  # written before the rotation
    assert await rotating() == f"signed with {OLD_SECRET}"  # read: verified with the old secret
    assert rotating.cache_info().hits == 1
    raw_redis.flushdb()
    await rotating()  # written during the rotation: signed with the new secret
    assert await new_only() == f"signed with {[SECRET, OLD_SECRET]}"
    assert await old() == f"signed with {OLD_SECRET}"  # the old secret alone cannot verify it
    assert old.cache_info().rejected == 1


async def test_the_serializer_signs_with_the_key_through_the_plugin(
    redis_port: int, raw_redis: redis.Redis
) -> None:
    def cache() -> RedisCache:
        return redis_cache(redis_port, serializer=VixSerializer(secret=SECRET), plugins=[VixPlugin()])

    writer, reader = cache(), cache()
    await writer.set("match:1", {"odds": 1.5}, ttl=60)
    await writer.multi_set([("match:2", {"odds": 2.5}), ("match:3", {"odds": 3.5})], ttl=60)
    assert await reader.get("match:1") == {"odds": 1.5}
    assert await reader.multi_get(["match:3", "match:2"]) == [{"odds": 3.5}, {"odds": 2.5}]
    raw_redis.set("match:2", raw(raw_redis, "match:1"))  # a valid entry, moved
    assert await reader.get("match:2") is None
    assert await reader.multi_get(["match:1", "match:2"]) == [{"odds": 1.5}, None]
    assert reader.serializer.rejected == 2
    await writer.close()
    await reader.close()


# -- 3. keys: no address, no hash order, memcached's limits ------------------------------------


class Order:
    """An object whose only identity is its memory address."""

    def __init__(self, amount: int) -> None:
        self.amount = amount


async def test_an_argument_keyed_by_its_address_is_refused_never_served(redis_port: int) -> None:
    @vix_cached(60, status=lambda order: "normal", cache=redis_cache(redis_port))
    async def total(order: Order) -> int:
        return order.amount

    with pytest.raises(TypeError, match=r"total.*Order.*key="):
        await total(Order(100))

    @vix_cached(60, status=lambda order: "normal", cache=redis_cache(redis_port), key=lambda o: o.amount)
    async def keyed_total(order: Order) -> int:
        return order.amount

    for amount in (100, 5, 100, 5):  # dead objects' addresses are reused: the key never sees them
        assert await keyed_total(Order(amount)) == amount
        gc.collect()


async def test_aiocache_cached_refuses_default_keys_built_from_an_address(redis_port: int) -> None:
    @cached(ttl=60, cache=RedisCache, endpoint="127.0.0.1", port=redis_port)
    async def total(order: Order) -> int:
        return order.amount

    with pytest.raises(TypeError, match=r"Order.*memory address.*key_builder="):
        await total(Order(100))


async def test_in_process_stores_never_confuse_objects_at_a_reused_address() -> None:
    @vix_cached(60, status=lambda order: "normal", breaker=VIXCircuitBreaker(clock=FakeClock()))
    def total(order: Order) -> int:
        return order.amount

    for amount in range(200):  # the key holds the object: its address cannot be reused meanwhile
        assert total(Order(amount)) == amount


SHARING = textwrap.dedent(
    """
    import asyncio, sys
    import redis
    from aiocache import RedisCache
    from vix_ttl import VIXCircuitBreaker, vix_cached

    port = int(sys.argv[1])
    counter = redis.Redis(port=port)

    @vix_cached(60, status=lambda *a: "normal", cache=RedisCache(endpoint="127.0.0.1", port=port),
                namespace="shared", breaker=VIXCircuitBreaker())
    async def price(teams, odds, tags):
        counter.incr("computes")
        return sorted(teams)

    async def main():
        teams = frozenset(["real madrid", "barcelona", "atletico", "sevilla", "valencia"])
        odds = {k: i for i, k in enumerate(["home", "draw", "away", "over", "under"])}
        tags = {("league", "liga"), ("round", "12")}
        print(await price(teams, odds, tags))
        print(await price(teams, dict(reversed(odds.items())), set(tags)))

    asyncio.run(main())
    """
)


def test_processes_with_different_hash_seeds_share_entries(redis_port: int, raw_redis: redis.Redis) -> None:
    outputs = []
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", SHARING, str(redis_port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert len(set(outputs)) == 1
    assert raw_redis.get("computes") == b"1"  # three processes, six calls, one computation


@pytest.fixture
async def memcached(memcached_port: int) -> AsyncIterator[MemcachedCache]:
    cache = MemcachedCache(endpoint="127.0.0.1", port=memcached_port, namespace=f"t{uuid.uuid4().hex[:8]}:")
    yield cache
    await cache.close()


async def test_memcached_keys_with_spaces_and_long_arguments(memcached: MemcachedCache) -> None:
    computes: list[str] = []

    @vix_cached(60, status=lambda team: "normal", cache=memcached)
    async def odds(team: str) -> str:
        computes.append(team)
        return f"odds of {team}"

    long_name = "x" * 1000
    for team in ("real madrid", "real_madrid", long_name, "real madrid", "real_madrid", long_name):
        assert await odds(team) == f"odds of {team}"
    assert computes == ["real madrid", "real_madrid", long_name]
    assert odds.cache_info().hits == 3
    assert odds.cache_info().errors == 0


async def test_aiocache_cached_on_memcached_never_lets_two_keys_meet(memcached_port: int) -> None:
    computes: list[str] = []

    @cached(
        ttl=60, cache=MemcachedCache, endpoint="127.0.0.1", port=memcached_port, namespace=uuid.uuid4().hex
    )
    async def odds(team: str) -> str:
        computes.append(team)
        return f"odds of {team}"

    for team in ("real madrid", "real_madrid", "y" * 1000, "real madrid", "real_madrid", "y" * 1000):
        assert await odds(team) == f"odds of {team}"
    assert len(computes) == 3
    assert odds.cache_info().errors == 0


async def test_aiocache_cached_keeps_aiocaches_keys(redis_port: int, raw_redis: redis.Redis) -> None:
    async def odds(team: str, *, market: str = "1x2") -> float:
        return 1.5

    where = {"cache": RedisCache, "endpoint": "127.0.0.1", "port": redis_port, "namespace": "app"}
    await aiocache_cached(ttl=60, **where)(odds)("arsenal", market="ou")
    (aiocache_key,) = raw_redis.keys("*")
    moved = cached(ttl=60, **where)(odds)
    assert await moved("arsenal", market="ou") == 1.5  # aiocache's raw entry: not ours, recomputed
    assert raw_redis.keys("*") == [aiocache_key]  # and stored where aiocache had put it
    assert await moved("arsenal", market="ou") == 1.5
    assert moved.cache_info().hits == 1


# -- 4. faults: a server killed or hung, a mapping that raises -----------------------------------


class HungServer:
    """A TCP server that accepts and reads, and never answers: a backend that hangs."""

    def __init__(self) -> None:
        self.received = b""
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> HungServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            self.received += data

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


@pytest.mark.parametrize("backend", [RedisCache, MemcachedCache])
async def test_a_hung_server_costs_a_call_one_timeout_not_two(backend: type[Any]) -> None:
    async with HungServer() as server:
        cache = backend(endpoint="127.0.0.1", port=server.port, timeout=0.2)

        @vix_cached(60, status=lambda: "normal", cache=cache)
        async def price() -> str:
            return "computed"

        assert await price() == "computed"
        assert price.cache_info().errors == 1
        # The read took the whole budget: the write was never sent to the hung server.
        assert server.received
        for write in (b"PSETEX", b"SETEX", b"$3\r\nSET\r\n", b"set vix_ttl"):
            assert write not in server.received
        await asyncio.wait_for(cache.close(), 5)


@pytest.mark.parametrize("kill", ["redis", "memcached"])
async def test_a_server_killed_and_restarted_under_load_fails_no_call(tmp_path: Path, kill: str) -> None:
    binary = "redis-server" if kill == "redis" else "memcached"
    require_binary(binary, binary)  # Debian's package has the binary's name
    server = ServerProcess(tmp_path, kill)
    server.start()
    try:
        cls = RedisCache if kill == "redis" else MemcachedCache
        cache = cls(endpoint="127.0.0.1", port=server.port, timeout=1)
        clock = FakeClock(time.time())

        @vix_cached(
            60, status=lambda x: "normal", cache=cache, clock=clock, breaker=VIXCircuitBreaker(clock=clock)
        )
        async def price(x: int) -> int:
            await asyncio.sleep(0)
            return x * 10

        calls = 0

        async def hammer(rounds: int) -> None:
            nonlocal calls
            for i in range(rounds):
                results = await asyncio.gather(*(price(k % 7) for k in range(i, i + 20)))
                assert results == [(k % 7) * 10 for k in range(i, i + 20)]
                calls += 20

        await hammer(10)
        server.kill()  # SIGKILL: no goodbye to the clients
        await hammer(10)
        server.start()  # a new, empty server on the same port
        await hammer(10)
        info = price.cache_info()
        assert info.calls == calls == 600
        assert info.errors > 0 and info.hits > 0
        await cache.close()
    finally:
        server.kill()


async def test_memory_entries_go_unsigned_through_the_plugin_signed_without_it() -> None:
    serializer = VixSerializer(secret=SECRET)
    with_plugin = SimpleMemoryCache(serializer=serializer, plugins=[VixPlugin()])
    await with_plugin.set("k", {"odds": 1.5}, ttl=60)
    assert isinstance(await with_plugin.raw("get", "k"), tuple)  # only memory can hold one: no signature
    assert await with_plugin.get("k") == {"odds": 1.5}
    without = SimpleMemoryCache(serializer=serializer)
    await without.set("k", {"odds": 1.5}, ttl=60)
    raw = await without.raw("get", "k")
    assert raw.startswith("vix_ttl:2|") and not raw.startswith("vix_ttl:2|-|")  # backend unknown: signed
    assert await without.get("k") == {"odds": 1.5}


async def test_a_failed_command_leaves_nothing_that_weakens_the_next_one(
    redis_port: int, raw_redis: redis.Redis, marker: Path
) -> None:
    def status_of(value: Any) -> str:
        return str(value["status"])  # a KeyError for a value without one

    memory = SimpleMemoryCache(
        timeout=0,
        plugins=[VixPlugin()],
        serializer=VixSerializer(PickleSerializer(), secret=SECRET, status_of=status_of),
    )
    shared = redis_cache(redis_port, timeout=0, serializer=VixSerializer(PickleSerializer(), secret=SECRET))
    now = time.time()
    raw_redis.set(
        "lineup", f"vix_ttl:2|-|{now}|60.0|60.0|normal|0.0\n".encode() + pickle.dumps(Plant(marker))
    )
    with pytest.raises(KeyError):
        await memory.set("x", {})  # fails inside dumps: the plugin's post hook never runs
    with pytest.raises(KeyError):
        await memory.multi_set([("y", {"status": "normal"}), ("z", {})])
    assert await shared.get("lineup") is None  # still verified: the planted pickle is not run
    assert not marker.exists()
    await shared.close()


async def test_aiocache_cached_refuses_every_argument_shown_by_its_address(redis_port: int) -> None:
    @dataclasses.dataclass
    class Job:
        run: Callable[[], str]

    @cached(ttl=60, cache=RedisCache, endpoint="127.0.0.1", port=redis_port)
    async def apply(job: Any) -> Any:
        return job

    shown_by_address = (
        lambda: "first",
        threading.Lock(),
        Job(lambda: "x"),
        [object()],
        {"f": Job(lambda: "x").__eq__},  # a bound method shows its instance's address
    )
    for argument in shown_by_address:
        with pytest.raises(TypeError, match=r"memory address.*key_builder="):
            await apply(argument)
    assert await apply(("plain", 1, 2.5, None)) == ("plain", 1, 2.5, None)  # what str() shows truly


class DelayingProxy:
    """A loopback proxy to a real server whose replies can be held back: a slow backend."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.delay = 0.0
        self.port = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> DelayingProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.target)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, delayed: bool) -> None:
            while data := await source.read(65536):
                if delayed and self.delay:
                    await asyncio.sleep(self.delay)  # the slow backend itself, not a wait in the test
                sink.write(data)
                await sink.drain()
            sink.close()

        await asyncio.gather(pipe(client_reader, writer, False), pipe(reader, client_writer, True))

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


async def test_a_memcached_read_that_times_out_never_makes_a_later_call_read_its_reply(
    memcached_port: int,
) -> None:
    async with DelayingProxy(memcached_port) as proxy:
        namespace = f"t{uuid.uuid4().hex[:8]}:"
        cache = MemcachedCache(
            endpoint="127.0.0.1", port=proxy.port, pool_size=1, timeout=0.2, namespace=namespace
        )
        direct = MemcachedCache(endpoint="127.0.0.1", port=memcached_port, namespace=namespace)
        truth = {"a": "a-v1"}

        @vix_cached(
            60, status=lambda k: "normal", cache=cache, breaker=VIXCircuitBreaker(), namespace="desync"
        )
        async def value(k: str) -> str:
            return truth[k]

        assert await value("a") == "a-v1"
        proxy.delay = 0.5
        assert await value("a") == "a-v1"  # timed out: computed; the late reply is still coming
        proxy.delay = 0.0
        truth["a"] = "a-v2"
        await direct.clear()  # the entry is gone; the reply in flight still holds a-v1
        for _ in range(3):
            assert await value("a") == "a-v2"
        info = value.cache_info()
        assert info.errors >= 1 and info.calls == 5
        await cache.close()
        await direct.close()


async def test_the_default_serializer_keeps_what_functions_return(redis_port: int) -> None:
    computes: list[int] = []

    @vix_cached(60, status=lambda x: "normal", cache=redis_cache(redis_port), namespace="shape")
    async def pair(x: int) -> Any:
        computes.append(x)
        return (x, x) if x < 10 else {x: "int key"}

    for x in (1, 1, 20, 20):
        assert await pair(x) == ((x, x) if x < 10 else {x: "int key"})
    assert type(await pair(1)) is tuple and list(await pair(20)) == [20]  # never [1, 1], never {"20": ...}
    assert computes == [1, 20] and pair.cache_info().hits == 4


@pytest.mark.parametrize("serializer", ["default", "msgpack"])
async def test_a_value_the_serializer_cannot_keep_is_not_stored_and_said_once(
    redis_port: int, serializer: str
) -> None:
    Point = collections.namedtuple("Point", "x y")
    cache = redis_cache(
        redis_port, **({"serializer": MsgPackSerializer()} if serializer == "msgpack" else {})
    )
    computes: list[int] = []

    @vix_cached(60, status=lambda x: "normal", cache=cache, namespace=f"unkept-{serializer}")
    async def pair(x: int) -> Any:
        computes.append(x)
        return Point(x, x) if serializer == "default" else (x, x)  # msgpack gives tuples back as lists

    with captured_logs() as logs:
        for x in (1, 1, 2, 2):
            assert await pair(x) == (x, x)
    assert computes == [1, 1, 2, 2]  # never served back as another type
    # One line for the function, no traceback, the type named (0.2: a traceback per burst).
    assert [log["event"] for log in logs] == ["cache_value_not_storable"]
    assert "exc_info" not in logs[0] and (
        "Point" in logs[0]["error"] or "tuples into lists" in logs[0]["error"]
    )
    await cache.close()


async def test_an_entry_stored_in_the_future_is_not_fresh(redis_port: int, raw_redis: redis.Redis) -> None:
    @vix_cached(60, status=lambda: "normal", cache=redis_cache(redis_port), namespace="skew")
    async def odds() -> str:
        return "computed"

    await odds()
    (key,) = raw_redis.keys("*")
    ahead = time.time() + 3600  # a writer whose clock is an hour ahead, or a forged time
    raw_redis.set(key, f'vix_ttl:2|-|{ahead}|5.0|5.0|normal|0.0\n"from the future"')
    assert await odds() == "computed"
    assert odds.cache_info().stale == 1


@pytest.mark.parametrize("timeout", [-1, math.nan, math.inf])
def test_a_cache_timeout_vix_ttl_cannot_use_is_refused_at_decoration(redis_port: int, timeout: Any) -> None:
    with pytest.raises((ValueError, TypeError), match=r"the cache's timeout.*None or 0: no timeout"):

        @vix_cached(60, status=lambda: "normal", cache=redis_cache(redis_port, timeout=timeout))
        async def odds() -> str:
            return "computed"


async def test_invalidate_and_clear_fail_open_on_a_dead_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, "redis")
    server.start()
    cache = RedisCache(endpoint="127.0.0.1", port=server.port, timeout=1)

    @vix_cached(60, status=lambda x: "normal", cache=cache)
    async def odds(x: int) -> int:
        return x

    await odds(1)
    server.kill()
    with captured_logs() as logs:
        assert await odds.invalidate(1) is False
        await odds.cache_clear()
    assert [(log["event"], log["operation"]) for log in logs] == [
        ("cache_backend_failed", "delete"),
        ("cache_backend_failed", "clear"),
    ]
    await cache.close()


async def test_the_plugin_keeps_a_never_expiring_entry_forever(
    redis_port: int, raw_redis: redis.Redis
) -> None:
    cache = redis_cache(redis_port, ttl=60, serializer=VixSerializer(ttl=math.inf), plugins=[VixPlugin()])
    await cache.set("k", "v")  # the serializer's own ttl (never) comes before the cache's
    assert raw_redis.ttl("k") == -1
    await cache.close()


async def test_a_command_whose_serializer_never_runs_leaves_nothing_for_another_cache(
    redis_port: int, raw_redis: redis.Redis
) -> None:
    memory = SimpleMemoryCache(plugins=[VixPlugin()], serializer=VixSerializer())
    shared = redis_cache(redis_port, serializer=VixSerializer(secret=SECRET))  # no plugin: takes no handover
    await memory.set("k", "v")
    assert await memory.get("k", loads_fn=lambda raw: raw, timeout=0) is not None  # its own loads_fn
    await shared.set("k", "v", timeout=0)  # not a memory entry: signed, stored as text
    assert raw(raw_redis, "k").startswith(b"vix_ttl:2|") and not raw(raw_redis, "k").startswith(
        b"vix_ttl:2|-|"
    )
    assert await shared.get("k") == "v"
    await shared.close()


async def test_set_with_an_explicit_none_never_expires_over_a_caches_ttl(
    redis_port: int, raw_redis: redis.Redis
) -> None:
    clock = FakeClock(time.time())
    cache = redis_cache(
        redis_port,
        ttl=60,
        serializer=VixSerializer(clock=clock, breaker=VIXCircuitBreaker(clock=clock)),
        plugins=[VixPlugin()],
    )
    await cache.set("k", "v", ttl=None)  # aiocache: no expiry, whatever the cache's ttl
    assert raw_redis.ttl("k") == -1
    clock.advance(3600)
    assert await cache.get("k") == "v"
    await cache.close()


class Keys(enum.Enum):
    ODDS = "odds-key"


async def test_aiocache_cached_keys_an_enum_key_by_its_value_as_aiocache_does(
    redis_port: int, raw_redis: redis.Redis
) -> None:
    @cached(ttl=60, key=Keys.ODDS, cache=RedisCache, endpoint="127.0.0.1", port=redis_port)
    async def odds() -> float:
        return 1.5

    assert await odds() == 1.5
    assert raw_redis.keys("*") == [b"odds-key"]
    assert await odds() == 1.5
    assert odds.cache_info().hits == 1


@pytest.mark.parametrize("native", [False, True])
async def test_cache_clear_matches_its_namespace_as_written(
    redis_port: int, raw_redis: redis.Redis, native: bool
) -> None:
    # 0.2 sent "svc[ab]" to SCAN MATCH as a glob: it cleared svca's entries and kept its own.
    import redis.asyncio

    def store(namespace: str) -> Any:
        if native:
            return redis.asyncio.Redis(port=redis_port)
        return redis_cache(redis_port, namespace=namespace)

    functions = []
    for namespace in ("svc[ab]", "svca", "svc*"):

        @vix_cached(60, status=lambda x: "normal", cache=store(namespace), namespace=namespace)
        async def odds(x: int) -> int:
            return x

        await odds(1)
        functions.append(odds)
    await functions[0].cache_clear()
    await functions[2].cache_clear()
    keys = sorted(key.decode() for key in raw_redis.scan_iter("*"))
    left = [key for key in keys if "gone" not in key]  # the cleared entries' tombstones stay
    assert len(left) == 1 and "svca" in left[0] and "svc[ab]" not in left[0]
    assert len(keys) == 3


# -- values come back as they were -------------------------------------------------------------

ROUND_TRIPS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    2**64,  # beyond msgpack's own ints
    -(10**30),
    1.5,
    -0.0,
    math.inf,
    math.nan,
    "",
    "odds é 🎉",
    "\x00",
    b"",
    b"\x00\xff" * 100,
    [],
    [1, "a", None, [2.5]],
    (),
    (1,),
    (1, (2, 3), [4]),
    {"a": 1},
    {1: "a"},
    {(1, 2): "b"},
    {None: 0, True: 1, 2.5: 2, "s": 3},
    {1, 2, 3},
    frozenset({"a", "b"}),
    {frozenset({1}): {2}},
    datetime.datetime(2026, 6, 11, 20, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
    datetime.datetime(2026, 6, 11, 20, 0, 0, 123456),
    datetime.date(2026, 6, 11),
    datetime.time(20, 0, tzinfo=datetime.UTC),
    decimal.Decimal("2.10"),
    decimal.Decimal("-0"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    {"match": [{"odds": (2.1, decimal.Decimal("3.40")), "at": datetime.date(2026, 6, 11), 7: b"raw"}]},
]


def typed(value: Any) -> Any:
    """*value* with the type of every part of it spelled out: what a hit must give back."""
    if isinstance(value, list | tuple):
        return (type(value).__name__, [typed(item) for item in value])
    if isinstance(value, set | frozenset):
        return (type(value).__name__, sorted(repr(typed(item)) for item in value))
    if isinstance(value, dict):
        return ("dict", sorted((repr(typed(k)), repr(typed(v))) for k, v in value.items()))
    if isinstance(value, datetime.datetime | datetime.time):
        return (type(value).__name__, value.isoformat(), value.utcoffset())
    return (type(value).__name__, repr(value))


@pytest.mark.parametrize("store", ["aiocache-redis", "aiocache-memcached", "redis", "redis-text"])
async def test_every_value_comes_back_with_its_types_from_every_shared_store(
    redis_port: int, memcached_port: int, store: str
) -> None:
    import redis.asyncio

    makers: dict[str, Callable[[], Any]] = {
        "aiocache-redis": lambda: redis_cache(redis_port),
        "aiocache-memcached": lambda: MemcachedCache(endpoint="127.0.0.1", port=memcached_port),
        "redis": lambda: redis.asyncio.Redis(port=redis_port),
        "redis-text": lambda: redis.asyncio.Redis(port=redis_port, decode_responses=True),
    }
    cache = makers[store]()

    @vix_cached(60, status=lambda i: "normal", cache=cache, namespace=f"round-trip-{uuid.uuid4().hex[:8]}")
    async def value(i: int) -> Any:
        return ROUND_TRIPS[i]

    for i, expected in enumerate(ROUND_TRIPS):
        assert typed(await value(i)) == typed(expected)  # the miss
        assert typed(await value(i)) == typed(expected), expected  # the hit
    info = value.cache_info()
    assert (info.misses, info.hits, info.errors) == (len(ROUND_TRIPS), len(ROUND_TRIPS), 0)
    if store != "aiocache-memcached":  # memcached cannot clear by prefix: the entries expire
        await value.cache_clear()
    await (cache.close() if store.startswith("aiocache") else cache.aclose())


def nested(depth: int) -> tuple[Any, ...]:
    value: tuple[Any, ...] = ()
    for _ in range(depth - 1):
        value = (value,)
    return value


@pytest.mark.parametrize(
    "unkept", [nested(200), bytearray(b"odds"), memoryview(b"odds"), [1, (2, bytearray(b"x"))]], ids=repr
)
async def test_a_value_that_would_come_back_otherwise_is_returned_never_kept(
    redis_port: int, unkept: Any
) -> None:
    import redis.asyncio

    # 0.3's first cut stored a 200-deep tuple, and every process that read it crashed (SIGSEGV);
    # msgpack packs a bytearray as bytes: it came back as bytes.
    client = redis.asyncio.Redis(port=redis_port)

    @vix_cached(60, status=lambda: "normal", cache=client, namespace=f"unkept-{uuid.uuid4().hex[:8]}")
    async def value() -> Any:
        return unkept

    assert await value() is unkept and await value() is unkept
    assert value.cache_info().hits == 0
    await client.aclose()


async def test_a_planted_entry_nested_too_deep_is_refused_not_decoded(
    redis_port: int, raw_redis: redis.Redis
) -> None:
    import msgpack
    import redis.asyncio

    client = redis.asyncio.Redis(port=redis_port)
    namespace = f"deep-{uuid.uuid4().hex[:8]}"

    @vix_cached(60, status=lambda: "normal", cache=client, namespace=namespace)
    async def value() -> str:
        return "computed"

    await value()
    (key,) = raw_redis.keys(f"vix_ttl:{namespace}*")
    payload = msgpack.packb([])
    for _ in range(5000):  # tuples within tuples, 5,000 deep, written by hand
        payload = msgpack.packb(msgpack.ExtType(1, payload))
    raw_redis.set(
        key, f"vix_ttl:2|-|{time.time()}|60.0|60.0|normal|0.0|{time.time()}\n".encode() + b"\xc1" + payload
    )
    assert await value() == "computed" and value.cache_info().rejected == 1
    await client.aclose()


def test_a_redis_client_with_a_timeout_out_of_range_is_refused_naming_it() -> None:
    import redis.asyncio

    with pytest.raises(ValueError, match="the Redis client's socket_timeout must be a number of seconds"):

        @vix_cached(60, status=lambda: "normal", cache=redis.asyncio.Redis(port=1, socket_timeout=10**400))
        async def value() -> int:
            return 1
