"""Fail open: a cache backend that fails never fails the call."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cachetools
import pytest
from aiocache import RedisCache

from tests.conftest import require_binary
from tests.logs import captured_logs
from vix_ttl import VIXCircuitBreaker
from vix_ttl._faults import QUIET_SECONDS
from vix_ttl.decorator import vix_cached
from vix_ttl.testing import FakeClock


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int) -> None:
    """Until a server just started listens on *port* (a rendezvous with a process, not a clock)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"no server started on port {port}"
            time.sleep(0.01)


class ServerProcess:
    """A Redis or memcached server of the test's own, to stop, kill and start at will."""

    def __init__(self, tmp: Path, kind: str = "redis", *extra: str) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.kind = kind
        self.extra = extra  # more server options, e.g. --requirepass
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        if self.kind == "memcached":
            as_root = ["-u", "root"] if os.geteuid() == 0 else []  # memcached refuses root otherwise
            return ["memcached", "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "16", *as_root]
        return [
            "redis-server",
            *("--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"),
            *("--dir", str(self.tmp), *self.extra),
        ]

    def start(self) -> None:
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(30)

    def kill(self) -> None:
        """SIGKILL: the server says no goodbye to its clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


RedisProcess = ServerProcess


@contextlib.contextmanager
def own_redis(tmp: Path, *extra: str) -> Iterator[RedisProcess]:
    """A Redis server of the test's own, stopped after it, whatever happens."""
    require_binary("redis-server", "redis-server")
    server = ServerProcess(tmp, "redis", *extra)
    server.start()
    try:
        yield server
    finally:
        if server.process and server.process.poll() is None:
            server.stop()


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    with own_redis(tmp_path) as server:
        yield server


async def test_redis_stopped_mid_run_then_restarted(redis_process: RedisProcess) -> None:
    clock = FakeClock()
    cache = RedisCache(endpoint="127.0.0.1", port=redis_process.port, timeout=2)
    computes: list[int] = []

    @vix_cached(
        60, status=lambda x: "normal", breaker=VIXCircuitBreaker(clock=clock), cache=cache, clock=clock
    )
    async def price(x: int) -> int:
        computes.append(x)
        return x * 10

    assert await price(1) == 10
    assert await price(1) == 10
    assert (len(computes), price.cache_info().hits) == (1, 1)

    redis_process.stop()
    with captured_logs() as down_logs:
        for _ in range(20):
            assert await price(1) == 10  # computed: the call never fails
    assert len(computes) == 21
    assert price.cache_info().errors == 20
    failures = [log for log in down_logs if log["event"].startswith("cache_backend")]
    # Once per burst of each operation: the reads, and the writes that follow them.
    assert sorted((log["event"], log["operation"]) for log in failures) == [
        ("cache_backend_failed", "get"),
        ("cache_backend_failed", "set"),
    ]

    redis_process.start()
    with captured_logs() as up_logs:
        # The empty new server: a miss, stored again, then hits. A pooled connection from
        # before the restart may fail once more on its first command.
        results = [await price(1) for _ in range(5)]
        clock.advance(QUIET_SECONDS)  # a burst ends at the first success a quiet second after its last fault
        results.append(await price(1))
    info = price.cache_info()
    assert results == [10] * 6
    assert info.calls == 28 and info.hits >= 4  # the last calls are served from the restarted server
    assert info.misses == 2  # the first call ever, and the first the new server answered
    assert [log["event"] for log in up_logs][-1] == "cache_backend_recovered"
    await cache.close()


class BrokenMapping(cachetools.LRUCache[Any, Any]):
    """A store that fails on demand, like a mapping over a network would."""

    broken = False

    def __getitem__(self, key: Any) -> Any:
        if self.broken:
            raise OSError("store unreachable")
        return super().__getitem__(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        if self.broken:
            raise OSError("store unreachable")
        super().__setitem__(key, value)


def test_a_failing_mapping_store_fails_open() -> None:
    store = BrokenMapping(maxsize=10)

    @vix_cached(60, status=lambda x: "normal", breaker=VIXCircuitBreaker(clock=FakeClock()), cache=store)
    def price(x: int) -> int:
        return x

    price(1)
    store.broken = True
    with captured_logs() as logs:
        assert [price(1) for _ in range(5)] == [1] * 5
    assert {k: v for k, v in price.cache_info().counts.items() if v} == {"misses": 1, "errors": 5}
    assert sorted((log["event"], log["operation"]) for log in logs) == [
        ("cache_backend_failed", "get"),
        ("cache_backend_failed", "set"),
    ]
    store.broken = False
    price(2)
    assert price(2) == 2
    assert price.cache_info().hits == 1


def test_a_store_failing_one_call_in_three_is_one_burst_not_one_per_call() -> None:
    clock = FakeClock()
    store = BrokenMapping(maxsize=10)

    @vix_cached(60, status=lambda x: "normal", breaker=VIXCircuitBreaker(clock=clock), cache=store)
    def price(x: int) -> int:
        return x

    with captured_logs() as logs:
        for n in range(300):  # a cluster with one master of three down: some calls fail, others not
            store.broken = n % 3 == 0
            assert price(n % 7) == n % 7
            clock.advance(0.01)
        store.broken = False
        clock.advance(QUIET_SECONDS)
        price(100)  # the first miss a quiet second after the last fault ends both bursts
    assert [(log["event"], log["operation"]) for log in logs] == [
        ("cache_backend_failed", "get"),
        ("cache_backend_failed", "set"),
        ("cache_backend_recovered", "get"),
        ("cache_backend_recovered", "set"),
    ]
    assert price.cache_info().errors == 100


async def test_a_hung_backend_times_out_into_a_computed_call() -> None:
    class Hung(RedisCache):  # type: ignore[misc]
        async def _get(self, *args: Any, **kwargs: Any) -> Any:
            await asyncio.Event().wait()

        _multi_get = _get  # an entry is read with its tombstone

    cache = Hung(endpoint="127.0.0.1", port=1, timeout=0.05)

    @vix_cached(60, status=lambda x: "normal", breaker=VIXCircuitBreaker(clock=FakeClock()), cache=cache)
    async def price(x: int) -> int:
        return x

    with captured_logs() as logs:
        assert await price(3) == 3
    assert price.cache_info().errors == 1
    # One line: the read that spent the call's time; the write it left no time for is not a fault.
    (failed,) = [log for log in logs if log["event"] == "cache_backend_failed"]
    assert failed["operation"] == "get" and "no answer within the call's timeout (0.05 s)" in failed["error"]


class PickyMapping(cachetools.LRUCache[Any, Any]):
    """A store that refuses some hashable keys with TypeError, as a typed mapping might."""

    # Keys in a mapping of the user's are (namespace, arguments).
    def __getitem__(self, key: Any) -> Any:
        if key[1][0] % 3 == 0:
            raise TypeError(f"this store cannot look up {key!r}")
        return super().__getitem__(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        if key[1][0] % 3 == 1:
            raise TypeError(f"this store cannot hold {key!r}")
        super().__setitem__(key, value)


def test_a_store_raising_typeerror_for_a_hashable_key_has_failed_not_the_call() -> None:
    @vix_cached(
        60, status=lambda x: "normal", breaker=VIXCircuitBreaker(clock=FakeClock()), cache=PickyMapping(100)
    )
    def price(x: int) -> int:
        return x * 2

    with captured_logs():
        assert [price(x % 30) for x in range(2000)] == [(x % 30) * 2 for x in range(2000)]
    info = price.cache_info()
    assert info.calls == 2000
    assert info.errors > 0 and info.hits > 0


@pytest.mark.parametrize("foreign", [None, "abc", (1, 2.0, 3.0), ("v", 0.0, 1e9), 42])
def test_a_value_vix_ttl_did_not_write_is_a_miss_and_is_overwritten(foreign: Any) -> None:
    store: dict[Any, Any] = {}

    @vix_cached(60, status=lambda x: "normal", breaker=VIXCircuitBreaker(clock=FakeClock()), cache=store)
    def price(x: int) -> str:
        return f"computed {x}"

    price(1)
    (key,) = store
    store[key] = foreign  # the user's own code wrote here
    assert price(1) == "computed 1"
    assert price(1) == "computed 1"
    assert {k: v for k, v in price.cache_info().counts.items() if v} == {"hits": 1, "misses": 2}


def test_an_unhashable_key_is_the_callers_error() -> None:
    @vix_cached(60, status=lambda x: "normal", breaker=VIXCircuitBreaker(clock=FakeClock()), cache={})
    def price(x: Any) -> int:
        return 1

    with pytest.raises(TypeError, match=r"must be hashable.*key="):
        price([1, 2])
