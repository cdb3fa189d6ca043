"""Fleet mode: one window shared through a real Redis by processes that record apart."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.logs import captured_logs
from tests.test_faults import RedisProcess, own_redis, redis_process  # noqa: F401 - a fixture
from vix_ttl import Mode, VIXCircuitBreaker
from vix_ttl.fleet import RedisWindow
from vix_ttl.testing import FakeClock


@pytest.fixture
def url(redis_port: int) -> str:
    return f"redis://127.0.0.1:{redis_port}/0"


@pytest.fixture
def name() -> Iterator[str]:
    yield f"test-{uuid.uuid4().hex[:8]}"


def fleet_breaker(url: str, name: str, clock: Any = None) -> VIXCircuitBreaker:
    return VIXCircuitBreaker(
        name="odds",
        min_samples=0,
        clock=clock or FakeClock(),
        window=RedisWindow(url, name=name, window_seconds=600),
    )


def member(url: str, name: str, statuses: list[str], barrier: Any, results: Any) -> None:
    breaker = fleet_breaker(url, name)
    window = breaker.window
    for status in statuses:
        breaker.record(status)
    local = breaker.mode.value  # before any flush: this process alone
    assert window.flush()  # type: ignore[attr-defined]
    barrier.wait(60)  # every member has flushed
    assert window.flush()  # type: ignore[attr-defined]  # nothing new: reads the fleet's totals
    results.put((os.getpid(), local, breaker.samples, breaker.metrics()["panic_samples"], breaker.mode.value))


def test_four_processes_share_one_window(url: str, name: str) -> None:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(4), context.Queue()
    mixes = [
        ["panic"] * 100,
        ["panic"] * 100,
        ["normal"] * 100,
        ["normal"] * 60 + ["panic"] * 20 + ["normal"] * 20,
    ]
    members = [context.Process(target=member, args=(url, name, mix, barrier, results)) for mix in mixes]
    for process in members:
        process.start()
    seen = [results.get(timeout=120) for _ in members]
    for process in members:
        process.join(60)
        assert process.exitcode == 0
    # Alone, two members were CIRCUIT_OPEN and two NORMAL; in the fleet all judge
    # by 220 panics in 400 (55 %): HIGH_VOLATILITY everywhere, from both sides.
    assert sorted(local for _, local, *_ in seen) == ["circuit_open", "circuit_open", "normal", "normal"]
    assert {(samples, panics, mode) for _, _, samples, panics, mode in seen} == {
        (400, 220, "high_volatility")
    }


def test_the_fleet_ratio_ignores_the_hosts_clocks(url: str, name: str) -> None:
    early, late = fleet_breaker(url, name, FakeClock(0)), fleet_breaker(url, name, FakeClock(1e9))
    for _ in range(10):
        early.record("panic")
        late.record("normal")
    assert early.window.flush() and late.window.flush() and early.window.flush()  # type: ignore[attr-defined]
    assert (early.samples, early.panic_ratio) == (late.samples, late.panic_ratio) == (20, 0.5)


def test_keys_are_namespaced_and_expire_on_their_own(url: str, name: str) -> None:
    breaker = fleet_breaker(url, name)
    breaker.record("panic")
    assert breaker.window.flush()  # type: ignore[attr-defined]
    client = redis.Redis.from_url(url, decode_responses=True)
    keys = sorted(client.keys(f"vix_ttl:window:{{{name}}}:*"))
    assert keys[0] == f"vix_ttl:window:{{{name}}}:buckets"
    assert str(keys[1]).startswith(f"vix_ttl:window:{{{name}}}:flushed:")  # this process's sequence
    assert keys[2] == f"vix_ttl:window:{{{name}}}:totals"
    assert all(0 < client.ttl(k) <= 603 for k in keys)


async def test_asyncio_flusher_with_a_final_flush(url: str, name: str) -> None:
    breaker = fleet_breaker(url, name)
    window: RedisWindow = breaker.window  # type: ignore[assignment]
    await window.start_async()
    for _ in range(5):
        breaker.record("panic")
    await window.stop_async()  # the final flush delivers the five samples
    reader = fleet_breaker(url, name)
    assert reader.window.flush()  # type: ignore[attr-defined]
    assert reader.samples == 5


def test_thread_flusher_start_stop(url: str, name: str) -> None:
    breaker = fleet_breaker(url, name)
    window: RedisWindow = breaker.window  # type: ignore[assignment]
    window.start()
    for _ in range(7):
        breaker.record("normal")
    window.stop()
    assert window.shared and breaker.samples == 7


def test_redis_down_falls_back_to_the_local_window_and_rejoins(redis_process: RedisProcess) -> None:  # noqa: F811
    url = f"redis://127.0.0.1:{redis_process.port}/0"
    breaker = fleet_breaker(url, "outage")
    window: RedisWindow = breaker.window  # type: ignore[assignment]
    other = fleet_breaker(url, "outage")
    for _ in range(10):
        other.record("panic")
    assert other.window.flush()  # type: ignore[attr-defined]
    breaker.record("normal")
    assert window.flush() and breaker.samples == 11 and breaker.mode is Mode.CIRCUIT_OPEN

    redis_process.stop()
    with captured_logs() as logs:
        for _ in range(5):
            breaker.record("normal")  # never raises
            assert not window.flush()
    assert breaker.samples == 6  # its own window now: 6 normal samples
    assert breaker.metrics()["mode"] == "normal"
    assert [log["event"] for log in logs if log["event"].startswith("fleet")] == ["fleet_window_unreachable"]
    assert breaker.metrics()["fleet_faults"] == 5 and breaker.metrics()["fleet_shared"] is False

    redis_process.start()  # an empty server: each process refills it with its own window
    with captured_logs() as logs:
        assert window.flush()
    assert [log["event"] for log in logs] == ["fleet_window_restarted", "fleet_window_rejoined"]
    assert breaker.samples == 6  # this process's window, all of it: nothing lost
    assert breaker.metrics()["fleet_shared"] is True
    assert other.window.flush() and breaker.window.flush()  # type: ignore[attr-defined]
    assert (breaker.samples, breaker.panic_ratio) == (16, 10 / 16)  # the other's 10 panics came back with it


def test_a_password_protected_redis(tmp_path: Path) -> None:
    with own_redis(tmp_path, "--requirepass", "s3cret") as server:
        right = fleet_breaker(f"redis://:s3cret@127.0.0.1:{server.port}/0", "secret")
        right.record("panic")
        assert right.window.flush()  # type: ignore[attr-defined]
        wrong = fleet_breaker(f"redis://:nope@127.0.0.1:{server.port}/0", "secret")
        wrong.record("panic")
        assert not wrong.window.flush()  # type: ignore[attr-defined]  # a fault, not an error
        assert wrong.samples == 1 and wrong.metrics()["fleet_faults"] == 1


def test_window_settings_belong_to_the_window(url: str) -> None:
    with pytest.raises(ValueError, match="belong to the window given"):
        VIXCircuitBreaker(window_seconds=60, window=RedisWindow(url, name="x", window_seconds=600))
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        RedisWindow(url, name="")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"flush_seconds": float("nan")}, ValueError, "flush_seconds must be a finite number of seconds > 0"),
        ({"flush_seconds": 0}, ValueError, "flush_seconds must be a finite number of seconds > 0"),
        ({"flush_seconds": "x"}, TypeError, "flush_seconds must be a number of seconds, got 'x'"),
        ({"timeout": -1}, ValueError, "timeout must be a finite number of seconds > 0"),
        ({"timeout": float("inf")}, ValueError, "timeout must be a finite number"),
        ({"bucket_seconds": 1e-5}, ValueError, "at most 1,000,000"),
        ({"flush_seconds": 1e-9}, ValueError, "flush_seconds .* must be at least 0.01 s"),
        ({"name": "}x"}, ValueError, "without braces .*hash tag"),
        ({"name": "odds{eu}"}, ValueError, "without braces"),
        ({"name": None}, TypeError, "name must be a string, got None"),
    ],
)
def test_bad_fleet_settings_are_refused_naming_the_parameter(
    url: str, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        RedisWindow(url, **{"name": "x", **kwargs})


def dying_member(url: str, name: str) -> None:
    breaker = fleet_breaker(url, name)
    for _ in range(10):
        breaker.record("panic")
    assert breaker.window.flush()  # type: ignore[attr-defined]
    for _ in range(5):
        breaker.record("panic")  # never flushed: the process dies first
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_process_that_dies_does_not_corrupt_the_window(url: str, name: str) -> None:
    process = multiprocessing.get_context("spawn").Process(target=dying_member, args=(url, name))
    process.start()
    process.join(60)
    assert process.exitcode == -signal.SIGKILL
    reader = fleet_breaker(url, name)
    reader.record("normal")
    assert reader.window.flush()  # type: ignore[attr-defined]
    assert (reader.samples, reader.metrics()["panic_samples"]) == (11, 10)  # what was flushed, exactly


def timed_window(url: str, name: str, clock: FakeClock, **settings: Any) -> RedisWindow:
    """A window whose buckets follow *clock* (not the server's), 10 buckets of 1 s."""
    return RedisWindow(url, name=name, window_seconds=10, bucket_seconds=1, clock=clock, **settings)


def test_calm_traffic_for_three_window_lengths_flushes_and_evicts_exactly(url: str, name: str) -> None:
    # 0.2's script sent HINCRBY -0 when a bucket without panics left the window: Redis
    # refused it, every flush failed from then on, and the totals drifted.
    clock = FakeClock(1_000_000)
    window = timed_window(url, name, clock)
    breaker = VIXCircuitBreaker(clock=clock, min_samples=0, window=window)
    for second in range(30):
        for _ in range(5):
            breaker.record("panic" if second % 7 == 0 else "normal")
        assert window.flush()
        clock.advance(1)
        in_window = range(max(0, second - 9), second + 1)
        assert (window.total, window.panics) == (5 * len(in_window), 5 * sum(s % 7 == 0 for s in in_window))
    assert window.metrics()["fleet_faults"] == 0


def test_a_flush_that_ran_but_lost_its_reply_is_not_applied_twice(url: str, name: str) -> None:
    clock = FakeClock(1_000_000)
    window = timed_window(url, name, clock)
    breaker = VIXCircuitBreaker(clock=clock, window=window)
    script = window._script

    def ran_then_lost(**kwargs: Any) -> Any:  # the server applied it; the reply never came
        script(**kwargs)
        raise redis.TimeoutError("Timeout reading from socket")

    for _ in range(100):
        breaker.record("panic")
    window._script = ran_then_lost
    with captured_logs() as logs:
        assert not window.flush()
    window._script = script
    assert window.flush()  # sent again, with its sequence number: applied once
    assert (window.total, window.panics) == (100, 100)  # 0.2: 200
    assert [log["event"] for log in logs] == ["fleet_window_unreachable"]
    assert "Timeout reading from socket" in logs[0]["error"]  # the error's own message


def test_processes_with_other_settings_refuse_to_join_and_say_so_once(url: str, name: str) -> None:
    clock = FakeClock(1_000_000)
    fleet = timed_window(url, name, clock)
    other = RedisWindow(url, name=name, window_seconds=10, bucket_seconds=2, clock=clock)
    fleet_breaker_ = VIXCircuitBreaker(clock=clock, window=fleet)
    other_breaker = VIXCircuitBreaker(clock=clock, window=other)
    with captured_logs() as logs:
        for _ in range(25):
            fleet_breaker_.record("normal")
            other_breaker.record("panic")
            assert fleet.flush()  # the fleet's own evictions go on
            assert not other.flush()  # a rolling deploy's odd one out: its own window
            clock.advance(1)
    assert [log["event"] for log in logs if log["event"].startswith("fleet")] == [
        "fleet_window_settings_differ"
    ]
    assert (fleet.total, fleet.panics) == (10, 0)  # only the fleet's, and only the last 10 s
    assert other.shared is False  # it judges by its own window: its own panics only
    assert 0 < other_breaker.samples == other_breaker.metrics()["panic_samples"]


def _vandalize(client: redis.Redis, keys: list[str], how: str, clock: FakeClock) -> None:
    """Write to the window's keys as anyone who can reach the server can."""
    buckets, totals = keys[0], keys[1]
    head = int(clock() // 1)
    if how == "totals a string":
        client.delete(totals)
        client.set(totals, "x")
    elif how == "buckets a list":
        client.delete(buckets)
        client.rpush(buckets, "x")
    elif how == "buckets evicted":  # memory pressure took the buckets, not the totals
        client.delete(buckets)
    elif how == "a bucket field not a number":  # 0.2 left the totals drifting for good
        client.hset(buckets, f"p:{head}", "abc")
    else:
        field, value = how.split("=")
        client.hset(totals, field, value.replace("FUTURE", str(head + 60)))


@pytest.mark.parametrize(
    "how",
    [
        "total=lots",
        "total=-40",
        "panics=-3",
        "panics=99",
        "head=x",
        "head=1e20",
        "head=FUTURE",  # a failover to a master whose clock is a minute behind
        "bucket=abc",
        "epoch=",
        "totals a string",
        "buckets a list",
        "buckets evicted",
        "a bucket field not a number",
    ],
)
def test_a_vandalized_window_starts_afresh_and_every_process_refills_it(
    url: str, name: str, how: str
) -> None:
    clock = FakeClock(1_000_000)
    one, two = timed_window(url, name, clock), timed_window(url, name, clock)
    first, second = VIXCircuitBreaker(clock=clock, window=one), VIXCircuitBreaker(clock=clock, window=two)
    for _ in range(10):
        first.record("panic")
        second.record("normal")
    assert one.flush() and two.flush()
    _vandalize(redis.Redis.from_url(url), one._keys, how, clock)
    with captured_logs() as logs:
        for second_ in range(12):  # past the window: what was true leaves it, the vandalism too
            first.record("normal")  # never raises
            assert one.flush() and two.flush() and one.flush()
            if second_ == 0:
                assert (one.total, one.panics) == (two.total, two.panics) == (21, 10)  # the truth, whole
            clock.advance(1)
    assert (one.total, one.panics) == (two.total, two.panics) == (10, 0)  # exact: the last 10 s
    assert [log["event"] for log in logs if log["event"] == "fleet_window_restarted"] == [
        "fleet_window_restarted"
    ] * 2  # each process says it once
    assert one.faults == two.faults == 0


def test_samples_held_through_an_outage_land_in_their_own_buckets(url: str, name: str) -> None:
    clock = FakeClock(1_000_000)
    window = RedisWindow(url, name=name, window_seconds=4, bucket_seconds=1, clock=clock)
    breaker = VIXCircuitBreaker(clock=clock, window=window)
    for _ in range(100):
        breaker.record("panic")
    script = window._script

    def down(**kwargs: Any) -> Any:
        raise redis.ConnectionError("Redis down")

    window._script = down
    for _ in range(20):  # 20 s of calm, Redis unreachable: the panics leave the local window
        clock.advance(1)
        assert not window.flush()
        for _ in range(2):
            breaker.record("normal")
    window._script = script
    assert window.flush()
    breaker.record("normal")
    # 0.2 dumped all 140 held samples into the current bucket: (141, 100), HIGH_VOLATILITY.
    assert (window.total, window.panics) == (9, 0) and breaker.mode is Mode.NORMAL


def test_a_redis_restarted_empty_is_refilled_by_the_fleet(redis_process: RedisProcess) -> None:  # noqa: F811
    url = f"redis://127.0.0.1:{redis_process.port}/0"
    clock = FakeClock(1_000_000)
    windows = [
        RedisWindow(url, name="restart", window_seconds=60, bucket_seconds=1, clock=clock) for _ in "ab"
    ]
    breakers = [VIXCircuitBreaker(clock=clock, window=window) for window in windows]
    for breaker in breakers:
        for _ in range(60):
            breaker.record("panic")
    assert all(window.flush() for window in windows) and breakers[0].mode is Mode.CIRCUIT_OPEN
    redis_process.stop()
    redis_process.start()  # no persistence: an empty server
    for _ in range(10):
        breakers[0].record("normal")
    assert all(window.flush() for window in windows)
    assert all(window.flush() for window in windows)  # each has refilled it: the totals are whole
    assert (windows[0].total, windows[0].panics) == (130, 120)
    assert breakers[0].mode is Mode.CIRCUIT_OPEN  # 0.2: NORMAL on the 10 samples it flushed


def test_the_flusher_never_dies_and_stop_never_raises(url: str, name: str) -> None:
    window = RedisWindow(url, name=name, window_seconds=10, bucket_seconds=0.05)
    breaker = VIXCircuitBreaker(window=window)

    def unreachable(**kwargs: Any) -> Any:  # not a RedisError: what a cluster client raises
        raise RuntimeError("RedisClusterUnreachableError: every node is down")

    script, window._script = window._script, unreachable
    with captured_logs() as logs:
        window.start()
        for _ in range(5):
            breaker.record("normal")
        wait_for_flushes(window, 3)
        assert window._thread is not None and window._thread.is_alive()
        window._script = script
        wait_for_flushes(window, 0, shared=True)
        window.stop()
    assert [log["event"] for log in logs] == ["fleet_window_unreachable", "fleet_window_rejoined"]
    assert breaker.samples == 5  # nothing lost


def wait_for_flushes(window: RedisWindow, faults: int, *, shared: bool = False) -> None:
    """Until the flusher thread has failed *faults* times (or rejoined): a rendezvous, not a clock."""
    deadline = time.monotonic() + 30
    while (window.faults < faults) if not shared else not window.shared:
        assert time.monotonic() < deadline, "the flusher never got there"
        time.sleep(0.01)


def test_a_window_over_a_cluster_or_a_sentinel_client(
    name: str, cluster_ports: list[int], sentinel_ports: list[int]
) -> None:
    from redis.cluster import RedisCluster
    from redis.sentinel import Sentinel

    from tests.conftest import SENTINEL_MASTER

    clients = [
        RedisCluster(host="127.0.0.1", port=cluster_ports[0]),
        Sentinel([("127.0.0.1", port) for port in sentinel_ports]).master_for(SENTINEL_MASTER),
    ]
    for client in clients:
        first, second = (VIXCircuitBreaker(window=RedisWindow(client=client, name=name)) for _ in range(2))
        first.record("panic")
        second.record("normal")
        assert first.window.flush() and second.window.flush() and first.window.flush()  # type: ignore[attr-defined]
        assert (first.samples, first.panic_ratio) == (2, 0.5)
        client.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, TypeError, "exactly one of url= .* and client="),
        ({"url": "redis://x", "client": object()}, TypeError, "exactly one of"),
        ({"client": object()}, TypeError, "synchronous redis.Redis"),
        ({"client": redis.Redis().pipeline()}, TypeError, "synchronous redis.Redis"),
        ({"url": None, "client": None}, TypeError, "exactly one of"),
        ({"url": 5}, TypeError, "url must be a redis:// or rediss:// URL"),
        ({"url": "redis://x", "namespace": None}, TypeError, "namespace must be a non-empty string"),
        ({"url": "redis://x", "flush_seconds": 1e12}, ValueError, "flush_seconds .* must not exceed"),
        ({"url": "redis://x", "clock": 5}, TypeError, "clock"),
    ],
)
def test_how_a_window_reaches_redis_is_checked(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        RedisWindow(name="x", **kwargs)
