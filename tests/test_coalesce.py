"""Coalescing in one process: N concurrent callers of one key, one computation (threads and tasks)."""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
from collections.abc import Callable

import pytest

from vix_ttl import VIXCircuitBreaker
from vix_ttl.decorator import vix_cached
from vix_ttl.testing import FakeClock

CALLERS = 50


def wait_until(predicate: Callable[[], bool]) -> None:
    """A rendezvous between threads (not a clock): spin until *predicate* holds."""
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, "threads never met"
        time.sleep(0.0005)


def breaker() -> VIXCircuitBreaker:
    return VIXCircuitBreaker(clock=FakeClock())


@pytest.mark.parametrize("status", ["normal", "panic"])  # panic: coalesced while bypassing too
def test_threads_on_one_key_share_one_computation(status: str) -> None:
    release = threading.Event()
    computes: list[int] = []

    @vix_cached(60, status=lambda x: status, breaker=breaker())
    def price(x: int) -> str:
        computes.append(x)
        release.wait(30)
        return f"price-{x}"

    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(price(1))) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    wait_until(lambda: price.in_flight(1) == CALLERS - 1)
    release.set()
    for thread in threads:
        thread.join()
    assert computes == [1]
    assert results == ["price-1"] * CALLERS
    info = price.cache_info()
    assert info.coalesced == CALLERS - 1
    assert info.calls == CALLERS


def test_threads_on_different_keys_do_not_block_each_other() -> None:
    release_one, computing_one = threading.Event(), threading.Event()

    @vix_cached(60, status=lambda x: "normal", breaker=breaker())
    def price(x: int) -> int:
        if x == 1:
            computing_one.set()
            release_one.wait(30)
        return x

    slow = threading.Thread(target=price, args=(1,))
    slow.start()
    computing_one.wait(30)
    assert [price(k) for k in range(2, 10)] == list(range(2, 10))  # while key 1 is computing
    release_one.set()
    slow.join()


class QuoteError(Exception):
    """An exception whose __init__ takes other parameters than its args."""

    def __init__(self, match: int, reason: str) -> None:
        super().__init__(f"no quote for {match}: {reason}")
        self.match, self.reason = match, reason


def test_an_exception_reaches_every_waiter_as_its_own_and_is_not_cached() -> None:
    release = threading.Event()
    attempts: list[int] = []

    @vix_cached(60, status=lambda x: "normal", breaker=breaker())
    def price(x: int) -> int:
        attempts.append(x)
        release.wait(30)
        if len(attempts) == 1:
            try:
                raise ConnectionError("socket closed")
            except ConnectionError as cause:
                raise QuoteError(x, "backend down") from cause
        return x

    errors: list[BaseException] = []

    def call() -> None:
        try:
            price(1)
        except QuoteError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    wait_until(lambda: price.in_flight(1) == CALLERS - 1)
    release.set()
    for thread in threads:
        thread.join()
    assert len({id(error) for error in errors}) == CALLERS  # never one object raised N times
    for error in errors:
        assert type(error) is QuoteError and (error.match, error.reason) == (1, "backend down")
        assert str(error) == "no quote for 1: backend down"
        assert isinstance(error.__cause__, ConnectionError)  # the chain is kept
    assert price(1) == 1  # not cached: computed again
    assert attempts == [1, 1]


@pytest.mark.parametrize("status", ["normal", "panic"])
async def test_tasks_on_one_key_share_one_computation(status: str) -> None:
    release = asyncio.Event()
    computes: list[int] = []

    @vix_cached(60, status=lambda x: status, breaker=breaker())
    async def price(x: int) -> str:
        computes.append(x)
        await release.wait()
        return f"price-{x}"

    tasks = [asyncio.ensure_future(price(1)) for _ in range(CALLERS)]
    while price.in_flight(1) < CALLERS - 1:
        await asyncio.sleep(0)  # let the tasks run up to the flight: a yield, not a wait
    release.set()
    assert await asyncio.gather(*tasks) == ["price-1"] * CALLERS
    assert computes == [1]
    assert price.cache_info().coalesced == CALLERS - 1


async def test_a_cancelled_caller_does_not_cancel_the_shared_computation() -> None:
    release = asyncio.Event()

    @vix_cached(60, status=lambda x: "normal", breaker=breaker())
    async def price(x: int) -> int:
        await release.wait()
        return x

    first = asyncio.ensure_future(price(1))
    second = asyncio.ensure_future(price(1))
    while price.in_flight(1) < 1:
        await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert await second == 1
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_tasks_share_an_exception_and_do_not_cache_it() -> None:
    release = asyncio.Event()
    attempts: list[int] = []

    @vix_cached(60, status=lambda x: "normal", breaker=breaker())
    async def price(x: int) -> int:
        attempts.append(x)
        await release.wait()
        if len(attempts) == 1:
            raise RuntimeError("feed down")
        return x

    tasks = [asyncio.ensure_future(price(1)) for _ in range(10)]
    while price.in_flight(1) < 9:
        await asyncio.sleep(0)
    release.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert [type(o) for o in outcomes] == [RuntimeError] * 10
    assert await price(1) == 1  # not cached: computed again
    assert attempts == [1, 1]
    assert price.cache_info().calls == 11


async def test_a_thousand_coalesced_callers_get_tracebacks_no_longer_than_one_callers() -> None:
    # 0.2 raised one object for all: its traceback grew by every raise (8,002 frames for
    # 2,000 callers), and formatting each cost quadratic time.
    release = asyncio.Event()

    @vix_cached(60, status=lambda x: "normal", breaker=breaker())
    async def price(x: int) -> str:
        await release.wait()
        raise QuoteError(x, "backend down")

    @vix_cached(60, status=lambda x: "normal", breaker=breaker(), coalesce=False)
    async def alone(x: int) -> str:
        raise QuoteError(x, "backend down")

    calls = [asyncio.create_task(price(1)) for _ in range(1000)]
    await asyncio.sleep(0)
    release.set()
    errors = await asyncio.gather(*calls, return_exceptions=True)
    with pytest.raises(QuoteError) as uncoalesced:
        await alone(1)
    one_caller = len(traceback.extract_tb(uncoalesced.value.__traceback__))
    depths = {len(traceback.extract_tb(error.__traceback__)) for error in errors}  # type: ignore[union-attr]
    assert max(depths) <= one_caller + 2  # a copy's frames: the computation's and its caller's
    assert len({id(error) for error in errors}) == 1000
    assert price.cache_info().coalesced == 999


# -- a computation that calls itself -----------------------------------------------------


def test_a_sync_computation_calling_itself_with_the_same_key_computes() -> None:
    attempts: list[int] = []

    @vix_cached(60, status=lambda x: "normal", breaker=breaker())
    def price(x: int) -> str:
        attempts.append(x)
        if len(attempts) < 3:
            return price(x)  # retry by recursion: 0.2 waited on its own computation forever
        return f"price-{x}"

    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(price(1)), daemon=True)
    thread.start()
    thread.join(30)
    assert result == ["price-1"] and attempts == [1, 1, 1]
    # Other callers were never stuck behind it: the key computes and caches as usual.
    assert price(1) == "price-1" and price.cache_info().hits == 1


async def test_an_async_computation_calling_itself_with_the_same_key_computes() -> None:
    attempts: list[int] = []

    @vix_cached(60, status=lambda x: "normal", breaker=breaker())
    async def price(x: int) -> str:
        attempts.append(x)
        if len(attempts) == 1:
            return await price(x)
        await asyncio.sleep(0)
        return f"price-{x}"

    assert await asyncio.wait_for(price(1), timeout=30) == "price-1"
    assert attempts == [1, 1]


class CodedError(Exception):
    """An exception that keeps its state in __slots__."""

    __slots__ = ("code",)

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


async def test_each_callers_copy_is_its_own_to_annotate_and_keeps_its_slots() -> None:
    release = asyncio.Event()

    @vix_cached(60, status=lambda x: "normal", breaker=breaker())
    async def price(x: int) -> str:
        await release.wait()
        raise CodedError("backend down", 503)

    async def caller(user: str) -> BaseException:
        try:
            await price(1)
        except CodedError as error:
            error.add_note(f"while serving {user}")  # what a web framework adds per request
            await asyncio.sleep(0)
            return error
        raise AssertionError("the computation raises")

    calls = [asyncio.create_task(caller(user)) for user in ("alice", "bob", "carol")]
    await asyncio.sleep(0)
    release.set()
    errors = await asyncio.gather(*calls)
    assert [error.__notes__ for error in errors] == [
        [f"while serving {u}"] for u in ("alice", "bob", "carol")
    ]
    assert [error.code for error in errors] == [503] * 3  # type: ignore[attr-defined]


def test_an_interrupt_in_the_computation_reaches_each_thread_as_its_own() -> None:
    release = threading.Event()

    @vix_cached(60, status=lambda x: "normal", breaker=breaker())
    def price(x: int) -> int:
        release.wait(30)
        raise BaseExceptionGroup("shutting down", [KeyboardInterrupt()])

    errors: list[BaseException] = []

    def call() -> None:
        try:
            price(1)
        except BaseExceptionGroup as group:
            errors.append(group)

    threads = [threading.Thread(target=call) for _ in range(10)]
    for thread in threads:
        thread.start()
    wait_until(lambda: price.in_flight(1) == 9)
    release.set()
    for thread in threads:
        thread.join()
    assert len({id(error) for error in errors}) == 10
    depths = {len(traceback.extract_tb(error.__traceback__)) for error in errors}
    assert max(depths) - min(depths) <= 2  # the computation's frames and each caller's own
