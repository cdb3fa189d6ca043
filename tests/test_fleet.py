"""Fleet mode: one window shared through a real Redis by processes that record apart."""

from __future__ import annotations

import multiprocessing
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from structlog.testing import capture_logs

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
    assert keys == [f"vix_ttl:window:{{{name}}}:buckets", f"vix_ttl:window:{{{name}}}:totals"]
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
    with capture_logs() as logs:
        for _ in range(5):
            breaker.record("normal")  # never raises
            assert not window.flush()
    assert breaker.samples == 6  # its own window now: 6 normal samples
    assert breaker.metrics()["mode"] == "normal"
    assert [log["event"] for log in logs if log["event"].startswith("fleet")] == ["fleet_window_unreachable"]
    assert breaker.metrics()["fleet_faults"] == 5 and breaker.metrics()["fleet_shared"] is False

    redis_process.start()  # an empty server: the fleet starts again from what is flushed now
    with capture_logs() as logs:
        assert window.flush()
    assert [log["event"] for log in logs] == ["fleet_window_rejoined"]
    assert breaker.samples == 5  # the samples kept while Redis was down: nothing lost
    assert breaker.metrics()["fleet_shared"] is True


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
        ({"bucket_seconds": 1e-9}, ValueError, "at most 1,000,000"),
    ],
)
def test_bad_fleet_settings_are_refused_naming_the_parameter(
    url: str, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        RedisWindow(url, name="x", **kwargs)


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
