"""Past one Redis: a 3-master Redis Cluster and a Sentinel-watched master, with real processes.

The servers are CI's (``.ci/services.sh``): the cluster on ``REDIS_CLUSTER_PORTS``, the
master and its replica on ``SENTINEL_DATA_PORTS``, watched by the Sentinels on
``SENTINEL_PORTS``. The failover test kills the master and starts it again afterwards, as
a replica of the new one, so the Sentinels have a replica to promote for whoever comes next.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from aiocache import RedisCache
from redis.cluster import RedisCluster
from redis.sentinel import Sentinel

from tests.conftest import SENTINEL_DATA_PORTS, SENTINEL_MASTER
from tests.harness import run_fleet
from tests.logs import captured_logs
from vix_ttl import VIXCircuitBreaker, vix_cached
from vix_ttl._keys import wire_key
from vix_ttl.fleet import RedisWindow

KEYS = 300
PROCESSES = 6
CALLS_AT_ONCE = 50


def cluster_member(port: int, namespace: str, barrier: Any, results: Any) -> None:
    """One process of a fleet over the cluster: calls every key twice, CALLS_AT_ONCE at a time."""
    import redis.asyncio.cluster

    async def main() -> None:
        client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=port)
        counter = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=port)

        def calm(match: int, *, book: str) -> str:
            return "normal"

        @vix_cached(60, status=calm, cache=client, namespace=namespace, breaker=VIXCircuitBreaker())
        async def odds(match: int, *, book: str) -> dict[str, Any]:
            await counter.incr(f"{namespace}:computes:{match}")  # counted outside the library
            await asyncio.sleep(0.2)  # long enough for every process to arrive
            return {"match": match, "book": book}

        async def every_key() -> list[dict[str, Any]]:
            # CALLS_AT_ONCE at a time, every process on the same keys at the same time: each key
            # is contended fleet-wide, and two cores run three masters and six processes.
            values: list[dict[str, Any]] = []
            for first in range(0, KEYS, CALLS_AT_ONCE):
                batch = range(first, min(first + CALLS_AT_ONCE, KEYS))
                values += await asyncio.gather(*(odds(m, book="bet365") for m in batch))
            return values

        # The counter is the test's, not the library's: it is ready before the race. A cold
        # cluster client loads redis's command table once per command sent meanwhile (30 to 50
        # at a first batch), a second of CPU per process that held the computations up and
        # stalled event loops past a lease renewal.
        await counter.initialize()
        await asyncio.to_thread(barrier.wait, 60)
        with captured_logs() as logs:
            values = await every_key()
            again = await every_key()
        wrong = sum(v != {"match": m % KEYS, "book": "bet365"} for m, v in enumerate([*values, *again]))
        results.put((odds.cache_info().counts, wrong, [(log["event"], log.get("error")) for log in logs]))
        await client.aclose()
        await counter.aclose()

    asyncio.run(main())


def test_a_fleet_over_a_redis_cluster_computes_each_key_once(cluster_ports: list[int]) -> None:
    namespace = f"cluster-{uuid.uuid4().hex[:8]}"
    outcomes = run_fleet(cluster_member, cluster_ports[0], namespace, processes=PROCESSES)
    infos = [info for info, _, _ in outcomes]
    assert sum(wrong for _, wrong, _ in outcomes) == 0
    assert [events for _, _, events in outcomes] == [[]] * PROCESSES  # no MOVED, no CROSSSLOT, no fault
    assert sum(info["errors"] for info in infos) == 0
    totals = {field: sum(info[field] for info in infos) for field in infos[0]}
    cluster = RedisCluster(host="127.0.0.1", port=cluster_ports[0])
    computes = [int(cluster.get(f"{namespace}:computes:{m}") or 0) for m in range(KEYS)]
    # All cached: every call of the second round is a hit (and a slower process's first ones may be).
    assert totals["hits"] >= KEYS * PROCESSES, (totals, sorted(computes)[-20:], sum(computes))
    assert sum(info["misses"] for info in infos) == KEYS  # one computation per key, fleet-wide
    cluster = RedisCluster(host="127.0.0.1", port=cluster_ports[0])
    computes = [int(cluster.get(f"{namespace}:computes:{m}") or 0) for m in range(KEYS)]
    assert computes == [1] * KEYS
    # The entries spread over every master (no hash tag pins them to one slot).
    wire = [wire_key(namespace, ((m,), {"book": "bet365"})) for m in range(KEYS)]
    owners = {cluster.get_node_from_key(key).name for key in wire}  # type: ignore[no-untyped-call]
    assert len(owners) == len(cluster_ports)
    cluster.close()


async def test_invalidate_and_cache_clear_on_a_cluster(cluster_ports: list[int]) -> None:
    import redis.asyncio.cluster

    client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=cluster_ports[0])
    namespace, computes = f"clear-{uuid.uuid4().hex[:8]}", []

    @vix_cached(
        60, status=lambda match: "normal", cache=client, namespace=namespace, breaker=VIXCircuitBreaker()
    )
    async def odds(match: int) -> int:
        computes.append(match)
        return match

    await asyncio.gather(*(odds(m) for m in range(50)))
    stored = [key async for key in client.scan_iter(match=f"vix_ttl:{namespace}|*")]
    assert len(stored) == 50  # on every node
    assert await odds.invalidate(7) is True
    assert await odds(7) == 7 and computes.count(7) == 2
    await odds.cache_clear()  # keys on three nodes, in many slots: no CROSSSLOT
    assert [key async for key in client.scan_iter(match=f"vix_ttl:{namespace}|*")] == []
    assert odds.cache_info().errors == 0
    await client.aclose()


async def test_cache_clear_of_a_large_namespace_clears_it_whole(cluster_ports: list[int]) -> None:
    import redis.asyncio.cluster

    # 0.2 ran the whole scan within one timeout: it gave up after 0.25 s, every key still there.
    # 1 s: the whole clear takes several (3.5 s on 2 cores); a step takes under 50 ms alone, and
    # at times past 0.25 s while other processes (another test run) take the cores.
    client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=cluster_ports[0], socket_timeout=1)
    namespace = f"large-{uuid.uuid4().hex[:8]}"

    @vix_cached(60, status=lambda match: "normal", cache=client, namespace=namespace)
    async def odds(match: int) -> int:
        return match

    filler = RedisCluster(host="127.0.0.1", port=cluster_ports[0])
    pipe = filler.pipeline()  # type: ignore[no-untyped-call]
    for n in range(60_000):
        pipe.set(f"vix_ttl:{namespace}|(i{n})", b"x")
    pipe.execute()
    with captured_logs() as logs:
        await odds.cache_clear()
    assert not [log for log in logs if log["event"].startswith("cache_backend")]
    assert not list(filler.scan_iter(match=f"vix_ttl:{namespace}|*", count=1000))
    filler.close()
    await client.aclose()


async def test_a_plain_client_pointed_at_a_cluster_says_so_once(cluster_ports: list[int]) -> None:
    cache = RedisCache(
        endpoint="127.0.0.1", port=cluster_ports[0], namespace=f"moved-{uuid.uuid4().hex[:8]}:"
    )

    @vix_cached(60, status=lambda match: "normal", cache=cache, breaker=VIXCircuitBreaker())
    async def odds(match: int) -> int:
        return match

    with captured_logs() as logs:
        assert [await odds(m) for m in range(100)] == list(range(100))  # never fails a call
    failed = [log for log in logs if log["event"] == "cache_backend_failed"]
    # A third of the keys live on that node and succeed: still named once, not at every call.
    assert len(failed) == 1 and "this is a Redis Cluster" in failed[0]["hint"]
    # With the server's message (an entry is read with its tombstone: another slot here).
    assert "MovedError" in failed[0]["error"] or "ClusterCrossSlotError" in failed[0]["error"]
    await cache.close()


async def test_a_client_pointed_at_a_replica_logs_one_burst_and_names_it(sentinel_ports: list[int]) -> None:
    replica = await _replica_port()
    cache = RedisCache(endpoint="127.0.0.1", port=replica, namespace=f"replica-{uuid.uuid4().hex[:8]}:")

    @vix_cached(60, status=lambda match: "normal", cache=cache, breaker=VIXCircuitBreaker())
    async def odds(match: int) -> int:
        return match

    with captured_logs() as logs:
        assert [await odds(m % 10) for m in range(300)] == [m % 10 for m in range(300)]
    failed = [log for log in logs if log["event"].startswith("cache_backend")]
    # Reads succeed, leases and writes fail: named once, not two lines per call (0.2: 599).
    assert len(failed) == 1 and "pointed at a replica" in failed[0]["hint"]
    assert "ReadOnlyError" in failed[0]["error"]
    await cache.close()


async def _replica_port() -> int:
    for port in SENTINEL_DATA_PORTS:
        info = redis.Redis(port=port).info("replication")
        if info["role"] == "slave":
            return port
    raise AssertionError("no replica among SENTINEL_DATA_PORTS")


def test_a_stalled_replica_never_takes_the_fleet_window_down(sentinel_ports: list[int]) -> None:
    master = Sentinel([("127.0.0.1", port) for port in sentinel_ports]).master_for(SENTINEL_MASTER)
    window = RedisWindow(client=master, name=f"stalled-{uuid.uuid4().hex[:8]}", window_seconds=60)
    breaker = VIXCircuitBreaker(window=window)
    replica = redis.Redis(port=asyncio.run(_replica_port()))
    pid = int(replica.info("server")["process_id"])
    assert window.flush()  # it learns the master has a replica
    for _ in range(10):
        breaker.record("panic")
    os.kill(pid, signal.SIGSTOP)  # the replica stalls: it acknowledges nothing
    try:
        with captured_logs() as logs:
            for _ in range(3):
                assert window.flush()  # 0.2: every flush failed, the fleet window was off
            assert window.shared and (window.total, window.panics) == (10, 10)  # sent 3 times, applied once
    finally:
        os.kill(pid, signal.SIGCONT)
    with captured_logs() as back:
        assert window.flush()  # the replica has it now: nothing is held any more
    assert (window.total, window.panics) == (10, 10) and not window._unconfirmed
    assert [log["event"] for log in logs if log["event"].startswith("fleet")] == [
        "fleet_window_not_replicated"
    ]
    assert [log["event"] for log in back] == ["fleet_window_replicated_again"]
    master.close()


# -- a failover under load -------------------------------------------------------------

CALLERS = 3
RATE = 200  # calls a second, per process


def failover_member(  # noqa: PLR0917 - a process target takes its arguments by position
    sentinel_ports: list[int], namespace: str, window_name: str, seconds: float, started: Any, results: Any
) -> None:
    """A process calling through a Sentinel master client at RATE calls/s, its breaker on a fleet window."""
    from redis.asyncio.sentinel import Sentinel as AsyncSentinel
    from redis.sentinel import Sentinel

    from vix_ttl.fleet import RedisWindow

    sentinels = [("127.0.0.1", port) for port in sentinel_ports]
    flusher = Sentinel(sentinels, socket_timeout=0.5).master_for(SENTINEL_MASTER, socket_timeout=0.5)
    window = RedisWindow(client=flusher, name=window_name, window_seconds=600, flush_seconds=0.2)
    breaker = VIXCircuitBreaker(window=window, min_samples=10**9)

    async def main() -> None:
        client = AsyncSentinel(sentinels, socket_timeout=0.5).master_for(SENTINEL_MASTER, socket_timeout=0.5)

        @vix_cached(1.0, status=lambda match: "normal", cache=client, namespace=namespace, breaker=breaker)
        async def double(match: int) -> dict[str, int]:
            return {"match": match, "double": 2 * match}

        calls = exceptions = wrong = 0
        shared: list[tuple[float, bool]] = []
        window.start()
        started.wait(60)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for match in range(RATE // 10):
                try:
                    value = await double(match)
                except Exception:
                    exceptions += 1
                else:
                    wrong += value != {"match": match, "double": 2 * match}
                calls += 1
            shared.append((time.time(), window.shared))
            await asyncio.sleep(0.1)
        window.stop()  # the last flush: every sample delivered
        results.put((calls, exceptions, wrong, shared, window.shared))
        await client.aclose()

    with captured_logs():
        asyncio.run(main())


def _master_port(sentinel_port: int) -> int:
    """The port of the master the Sentinel on *sentinel_port* names."""
    address: Any = redis.Redis(port=sentinel_port).sentinel_get_master_addr_by_name(SENTINEL_MASTER)
    return int(address[1])


def test_a_sentinel_failover_under_load(sentinel_ports: list[int], tmp_path: Path) -> None:
    master_port = _master_port(sentinel_ports[0])
    master = redis.Redis(port=master_port)
    namespace, window_name = f"failover-{uuid.uuid4().hex[:8]}", f"failover-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    started, results = context.Event(), context.Queue()
    members = [
        context.Process(
            target=failover_member, args=(sentinel_ports, namespace, window_name, 10.0, started, results)
        )
        for _ in range(CALLERS)
    ]
    for process in members:
        process.start()
    time.sleep(1)  # a rendezvous: the processes connect before the load starts
    started.set()
    time.sleep(3)  # under load
    pid = int(master.info("server")["process_id"])
    # Where it keeps its files: the one started again has the same, so whoever started it
    # (.ci/services.sh, by its pid file) stops this one too.
    config: Any = master.config_get("*")
    folder, pid_file = str(config["dir"]), str(config["pidfile"] or tmp_path / "redis.pid")
    os.kill(pid, signal.SIGKILL)  # the master dies mid-load
    killed_at = time.time()
    while _master_port(sentinel_ports[0]) == master_port:
        assert time.time() - killed_at < 30, "the Sentinels never promoted the replica"
        time.sleep(0.05)
    promoted_at = time.time()
    outcomes = [results.get(timeout=120) for _ in members]
    for process in members:
        process.join(60)
    try:
        calls = sum(c for c, *_ in outcomes)
        assert sum(e for _, e, *_ in outcomes) == 0  # no exception reached a caller
        assert sum(w for _, _, w, *_ in outcomes) == 0  # no wrong value served
        assert all(final for *_, final in outcomes)  # every process rejoined the fleet window
        for _, _, _, shared, _ in outcomes:
            rejoined = next(t for t, ok in shared if t > promoted_at and ok)
            assert rejoined - promoted_at <= 5.0
        # Breaker counts exact: every call recorded, in the new master's window, none lost or doubled.
        new_master = redis.Redis(port=_master_port(sentinel_ports[0]))
        total = int(new_master.hget(f"vix_ttl:window:{{{window_name}}}:totals", "total") or 0)
        assert total == calls
    finally:
        _restart_as_replica(master_port, folder, pid_file)


def _restart_as_replica(port: int, folder: str, pid_file: str) -> None:
    """Start the killed master again: the Sentinels make it a replica of the new one."""
    subprocess.run(
        [
            "redis-server",
            *("--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"),
            *("--daemonize", "yes", "--dir", folder, "--pidfile", pid_file),  # not /var/run/redis.pid
            *("--repl-diskless-sync-delay", "0"),
        ],
        check=True,
    )
    deadline = time.monotonic() + 30
    while True:  # a rendezvous with the Sentinels, not a clock
        try:
            if redis.Redis(port=port).info("replication").get("master_link_status") == "up":
                return
        except redis.ConnectionError:
            pass
        assert time.monotonic() < deadline, "the old master never came back as a replica"
        time.sleep(0.1)


async def test_aiocache_users_reach_a_sentinel_master_through_its_connection_pool(
    sentinel_ports: list[int],
) -> None:
    # The route the docs give aiocache users (docs/guides/fleet.md): aiocache's RedisCache over
    # redis-py's SentinelConnectionPool, which asks the Sentinels where the master is.
    from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

    sentinel = Sentinel([("127.0.0.1", port) for port in sentinel_ports])
    cache = RedisCache(
        connection_pool_class=SentinelConnectionPool,
        connection_pool_kwargs={"service_name": SENTINEL_MASTER, "sentinel_manager": sentinel},
        namespace=f"aiocache-sentinel-{uuid.uuid4().hex[:8]}:",
    )
    computes: list[int] = []

    @vix_cached(
        60,
        status=lambda match: "normal",
        cache=cache,
        breaker=VIXCircuitBreaker(),
        secret="a secret of the service, long enough",
    )
    async def odds(match: int) -> int:
        computes.append(match)
        return match

    assert [await odds(1) for _ in range(3)] == [1, 1, 1]
    assert computes == [1] and odds.cache_info().hits == 2
    master = redis.Redis(port=_master_port(sentinel_ports[0]))
    assert any(b"aiocache-sentinel" in key for key in master.keys("*aiocache-sentinel*"))
    await cache.close()
