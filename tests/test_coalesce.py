"""Coalescing in one process: N concurrent callers of one key, one computation (threads and tasks)."""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest

from vix_ttl import VIXCircuitBreaker
from vix_ttl._coalesce import AsyncCoalescer, SharedReads, ThreadCoalescer, own_copy, running
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


def all_join_one(
    call: Callable[[], None], price: Any, release: threading.Event, callers: int = CALLERS
) -> None:
    """*callers* threads run *call* at once; once every one but the leader waits on the
    leader's computation of key 1, *release* lets it finish, and they all end."""
    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    wait_until(lambda: price.in_flight(1) == callers - 1)
    release.set()
    for thread in threads:
        thread.join()


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
    all_join_one(lambda: results.append(price(1)), price, release)
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

    all_join_one(call, price, release)
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


def test_an_interrupt_in_the_computation_stays_in_its_thread_and_the_others_compute() -> None:
    """A Ctrl-C (or a SystemExit) is delivered to one thread: the threads that joined its
    computation compute for themselves rather than being interrupted too."""
    release, computed = threading.Event(), []

    @vix_cached(60, status=lambda x: "normal", breaker=breaker())
    def price(x: int) -> int:
        computed.append(x)
        if len(computed) == 1:
            release.wait(30)
            raise KeyboardInterrupt
        return 42

    interrupted: list[BaseException] = []
    results: list[int] = []

    def call() -> None:
        try:
            results.append(price(1))
        except KeyboardInterrupt as interrupt:
            interrupted.append(interrupt)

    all_join_one(call, price, release, callers=10)
    assert len(interrupted) == 1 and results == [42] * 9


# -- the coalescers and own_copy, directly ------------------------------------------------------


def test_thread_coalescer_one_leads_the_others_wait_and_get_its_value() -> None:
    coalescer, release, computes = ThreadCoalescer(), threading.Event(), []

    def compute() -> str:
        computes.append(1)
        release.wait(30)
        return "value"

    results: list[tuple[Any, bool]] = []
    threads = [threading.Thread(target=lambda: results.append(coalescer.run("k", compute))) for _ in range(8)]
    for thread in threads:
        thread.start()
    wait_until(lambda: coalescer.waiting("k") == 7)
    assert coalescer.busy("k") and not coalescer.busy("other") and coalescer.waiting("other") == 0
    release.set()
    for thread in threads:
        thread.join()
    assert sorted(results, key=lambda r: r[1]) == [("value", False)] * 7 + [("value", True)]
    assert computes == [1]
    assert not coalescer.busy("k") and coalescer.waiting("k") == 0
    assert coalescer.run("k", lambda: "again") == ("again", True)  # nothing is kept of it


async def test_async_coalescer_one_leads_the_others_wait_and_get_its_value() -> None:
    coalescer, release, computes = AsyncCoalescer(), asyncio.Event(), []

    async def compute() -> str:
        computes.append(1)
        await release.wait()
        return "value"

    calls = [asyncio.ensure_future(coalescer.run("k", compute)) for _ in range(8)]
    while coalescer.waiting("k") < 7:
        await asyncio.sleep(0)  # a yield, not a wait
    assert coalescer.busy("k") and not coalescer.busy("other")
    release.set()
    assert await asyncio.gather(*calls) == [("value", True)] + [("value", False)] * 7
    assert computes == [1] and not coalescer.busy("k")


async def test_a_cancelled_computation_cancels_every_caller_and_a_cancelled_caller_only_itself() -> None:
    coalescer, started = AsyncCoalescer(), asyncio.Event()
    computing: list[asyncio.Task[Any] | None] = []

    async def compute() -> str:
        computing.append(asyncio.current_task())
        started.set()
        await asyncio.Event().wait()
        return "never"

    calls = [asyncio.ensure_future(coalescer.run("k", compute)) for _ in range(3)]
    await started.wait()
    calls[1].cancel()  # one caller gives up: the others still wait
    await asyncio.sleep(0)
    assert not calls[0].done() and not calls[2].done()
    (task,) = computing
    assert task is not None
    task.cancel()  # the computation itself goes (its loop closing, say)
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
    assert not coalescer.busy("k")


def test_tasks_of_two_event_loops_never_share_a_computation() -> None:
    coalescer = AsyncCoalescer()
    inside, release = threading.Barrier(2), threading.Event()

    async def compute() -> str:
        await asyncio.to_thread(inside.wait, 10)  # both loops' computations run at once
        await asyncio.to_thread(release.wait, 10)
        return threading.current_thread().name

    async def call() -> tuple[Any, bool]:
        return await asyncio.wait_for(coalescer.run("k", compute), timeout=20)

    results: list[tuple[Any, bool]] = []
    threads = [
        threading.Thread(target=lambda: results.append(asyncio.run(call())), name=name, daemon=True)
        for name in ("one", "two")
    ]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [("one", True), ("two", True)]  # each loop led its own


def test_a_thread_computation_calling_itself_computes_and_its_callers_still_share() -> None:
    coalescer, depth = ThreadCoalescer(), []

    def compute() -> str:
        depth.append(1)
        if len(depth) < 3:
            return f"{coalescer.run('k', compute)[0]}+"  # would wait on itself forever
        return "innermost"

    result: list[tuple[Any, bool]] = []
    thread = threading.Thread(target=lambda: result.append(coalescer.run("k", compute)), daemon=True)
    thread.start()
    thread.join(30)  # joining its own computation, it would never end
    assert result == [("innermost++", True)]
    assert not running(coalescer, "k")  # only while it computes, in its own thread


async def test_an_async_computation_and_the_tasks_it_starts_call_themselves_and_compute() -> None:
    coalescer, depth = AsyncCoalescer(), []

    async def compute() -> str:
        depth.append(1)
        if len(depth) == 1:
            nested = asyncio.ensure_future(coalescer.run("k", compute))  # a task it starts
            return f"{(await nested)[0]}+"
        return "inner"

    assert await asyncio.wait_for(coalescer.run("k", compute), timeout=30) == ("inner+", True)


class UncopyableError(Exception):
    """One whose copy cannot be made faithfully: its class builds it from something else entirely."""

    def __init__(self) -> None:
        super().__init__("as raised")

    def __str__(self) -> str:
        return f"{self.args[0]} #{id(self)}"  # differs per object: no copy says the same


def raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(
    "error",
    [
        FileNotFoundError(2, "No such file or directory", "/odds.csv"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        CodedError("backend down", 503),
        KeyError("match"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_own_copy_is_another_object_of_the_same_type_that_says_the_same(error: BaseException) -> None:
    original = raised(error)
    original.__cause__ = ConnectionError("socket closed")
    original.add_note("seen by the computation")
    copy = own_copy(original, original.__traceback__)
    assert copy is not original and type(copy) is type(original)
    assert copy.args == original.args and str(copy) == str(original)
    assert copy.__dict__ == original.__dict__
    assert copy.__cause__ is original.__cause__ and copy.__suppress_context__
    assert copy.__traceback__ is original.__traceback__
    copy.add_note("one caller's own note")
    assert original.__notes__ == ["seen by the computation"]  # a list of its own
    if isinstance(original, OSError):
        assert (copy.errno, copy.filename) == (original.errno, original.filename)  # type: ignore[attr-defined]
    if isinstance(original, CodedError):
        assert copy.code == 503  # type: ignore[attr-defined]


def test_an_exception_that_cannot_be_copied_gets_a_stand_in_that_except_clauses_still_catch() -> None:
    original = raised(UncopyableError())
    original.__context__ = KeyError("while handling")
    copy = own_copy(original, None)
    assert copy is not original and isinstance(copy, UncopyableError)
    assert type(copy).__name__ == "UncopyableError" and copy.args == ("as raised",)
    assert copy.__context__ is original.__context__
    assert type(own_copy(original, None)) is type(copy)  # one stand-in class per class


def test_a_stand_in_is_chained_from_the_exception_it_stands_for() -> None:
    original = raised(UncopyableError())
    assert own_copy(original, None).__cause__ is original


async def test_concurrent_reads_of_a_key_make_one_read_and_each_caller_gets_its_result() -> None:
    reads, release, shared = [], asyncio.Event(), SharedReads()

    async def read() -> str:
        reads.append(1)
        await release.wait()
        return f"entry #{len(reads)}"

    calls = [asyncio.ensure_future(shared.run("k", read)) for _ in range(100)]
    other = asyncio.ensure_future(shared.run("other key", read))
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*calls) == ["entry #2"] * 100  # both reads ran; one for these 100
    assert await other == "entry #2" and reads == [1, 1]
    assert await shared.run("k", read) == "entry #3"  # a read that ended is never served again


async def test_when_the_first_reader_is_cancelled_the_others_read_again() -> None:
    reads, shared = [], SharedReads()
    first_in, release = asyncio.Event(), asyncio.Event()

    async def read() -> str:
        reads.append(1)
        if len(reads) == 1:
            first_in.set()
            await asyncio.Event().wait()  # the first reader hangs, then is cancelled
        await release.wait()
        return "read again"

    first = asyncio.ensure_future(shared.run("k", read))
    await first_in.wait()
    waiters = [asyncio.ensure_future(shared.run("k", read)) for _ in range(5)]
    await asyncio.sleep(0)
    first.cancel()
    for _ in range(3):  # loop turns, not time: the waiters wake, and one reads again
        await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiters) == ["read again"] * 5
    assert len(reads) == 2  # one more read for the five, not five
    with pytest.raises(asyncio.CancelledError):
        await first
