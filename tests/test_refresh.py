"""Background refreshes: one per key at a time, a cap on how many run at once, a failure logged
once per burst and counted (the entry it would have replaced stays), ``NotKept`` no failure."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest

from tests import test_stale
from tests.logs import captured_logs
from tests.test_stale import Backend
from vix_ttl import VIXCircuitBreaker, vix_cached
from vix_ttl._refresh import MAX_REFRESHES, NotKept, Refreshes, as_task, in_thread
from vix_ttl.testing import FakeClock


def wait_until(predicate: Callable[[], bool]) -> None:
    """A rendezvous with a background refresh (not a clock): spin until *predicate* holds."""
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, "the background refresh never landed"
        time.sleep(0.001)


class Launches:
    """A ``launch`` the test finishes by hand: each call makes one pending future."""

    def __init__(self) -> None:
        self.futures: list[Future[Any]] = []

    def __call__(self) -> Future[Any]:
        self.futures.append(Future())
        return self.futures[-1]


def test_one_refresh_per_key_at_a_time() -> None:
    refreshes, launch = Refreshes("odds"), Launches()
    assert refreshes.start("match-7", launch)
    assert refreshes.start("match-7", launch)  # refreshing already: nothing more launched
    assert len(launch.futures) == 1 and refreshes.running() == 1
    launch.futures[0].set_result("odds")
    assert refreshes.running() == 0
    assert refreshes.start("match-7", launch) and len(launch.futures) == 2  # ended: a new one may start


def test_beyond_the_cap_a_key_is_not_refreshed_and_its_caller_computes() -> None:
    refreshes, launch = Refreshes("odds", limit=2), Launches()
    assert refreshes.start("a", launch) and refreshes.start("b", launch)
    assert not refreshes.start("c", launch)
    assert len(launch.futures) == 2
    launch.futures[0].set_result(None)
    assert refreshes.start("c", launch)
    assert MAX_REFRESHES == 32  # a decorated function's default cap


def test_a_failed_refresh_is_counted_and_logged_once_per_burst() -> None:
    clock = FakeClock(1000)
    refreshes, launch = Refreshes("module.odds", clock=clock), Launches()
    with captured_logs() as logs:
        for key in range(3):
            refreshes.start(key, launch)
            launch.futures[-1].set_exception(ConnectionError("the odds feed is down"))
        clock.advance(5)
        refreshes.start("calm again", launch)
        launch.futures[-1].set_result("odds")
    assert refreshes.failures == 3
    events = [(log["event"], log.get("failed_operations")) for log in logs]
    assert events == [("cache_refresh_failed", None), ("cache_refreshes_recovered", 3)]
    assert logs[0]["function"] == "module.odds" and "the odds feed is down" in logs[0]["error"]


@pytest.mark.parametrize("ending", ["not kept", "cancelled"])
def test_a_refresh_not_kept_or_cancelled_is_no_failure(ending: str, caplog: pytest.LogCaptureFixture) -> None:
    refreshes, launch = Refreshes("odds"), Launches()
    with captured_logs() as logs, caplog.at_level(logging.WARNING):
        refreshes.start("k", launch)
        if ending == "not kept":
            launch.futures[0].set_exception(NotKept())
        else:
            launch.futures[0].cancel()
    assert refreshes.failures == 0 and refreshes.running() == 0
    assert logs == [] and caplog.records == []  # nothing said by vix_ttl, nor by the future's callback
    assert not issubclass(NotKept, Exception)  # stale_if_error serves nothing in its place


def test_a_refresh_that_cannot_start_is_not_running() -> None:
    refreshes = Refreshes("odds")

    def shutting_down() -> Future[Any]:
        raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    assert not refreshes.start("k", shutting_down)
    assert refreshes.running() == 0


def test_a_plain_functions_refresh_runs_in_the_shared_pool() -> None:
    refreshes, ran, done = Refreshes("odds"), [], threading.Event()

    def refresh() -> None:
        ran.append(threading.current_thread().name)
        done.set()

    assert refreshes.start("k", in_thread(refresh))
    assert done.wait(30)
    assert ran[0].startswith("vix_ttl-refresh")
    wait_until(lambda: refreshes.running() == 0)


async def test_a_coroutine_functions_refresh_is_a_task_of_the_running_loop() -> None:
    refreshes, ran = Refreshes("odds"), []

    async def refresh() -> None:
        ran.append(asyncio.get_running_loop())
        raise ConnectionError("down")

    assert refreshes.start("k", as_task(refresh))
    while refreshes.running():
        await asyncio.sleep(0)  # loop turns: the task runs and lands
    assert ran == [asyncio.get_running_loop()] and refreshes.failures == 1


# -- through the decorator: stale-while-revalidate's refresh -------------------------------------

clock, breaker = test_stale.clock, test_stale.breaker  # the stale tests' fixtures


def test_refreshes_are_one_per_key_and_their_failures_are_logged(
    clock: FakeClock, breaker: VIXCircuitBreaker
) -> None:
    backend = Backend()
    price = vix_cached(60, status=lambda key: "normal", breaker=breaker, stale_while_revalidate=60)(backend)
    price(1)
    clock.advance(61)
    backend.failing, backend.gate = True, threading.Event()
    with captured_logs() as logs:
        for _ in range(20):
            assert price(1) == "v0"
        wait_until(lambda: backend.computes == 2)  # twenty stale calls, one refresh
        backend.gate.set()
        wait_until(lambda: any(log["event"] == "cache_refresh_failed" for log in logs))
    assert backend.computes == 2
    assert price(1) == "v0"  # the entry stays: still within the allowance
