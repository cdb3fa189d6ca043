"""The simulator's event loop on virtual time: it never waits, it jumps to the next timer."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vix_ttl.sim._virtual_loop import VirtualTimeLoop


@pytest.fixture
def loop() -> Iterator[VirtualTimeLoop]:
    made = VirtualTimeLoop()
    yield made
    made.close()


def run(loop: VirtualTimeLoop, main: Coroutine[Any, Any, Any]) -> Any:
    return loop.run_until_complete(main)


def test_a_week_of_sleeping_takes_no_time(loop: VirtualTimeLoop) -> None:
    week = 7 * 24 * 3600  # longer than asyncio's longest wait in one select (a day): several jumps
    started = time.monotonic()
    run(loop, asyncio.sleep(week))
    assert loop.time() == week
    assert time.monotonic() - started < 5  # a bound far above any machine's, far below a week


@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=30))
def test_each_sleeper_wakes_at_its_own_time_in_the_order_of_their_times(delays: list[int]) -> None:
    loop = VirtualTimeLoop()
    woke: list[tuple[float, int]] = []

    async def sleeper(delay: int) -> None:
        await asyncio.sleep(delay)
        woke.append((loop.time(), delay))

    async def main() -> None:
        await asyncio.gather(*(sleeper(delay) for delay in delays))

    try:
        run(loop, main())
    finally:
        loop.close()
    assert sorted(woke) == woke  # nobody woke before an earlier timer
    assert sorted(woke) == sorted((float(delay), delay) for delay in delays)
    assert loop.time() == max(delays)


def test_time_stands_still_while_there_is_work_to_do(loop: VirtualTimeLoop) -> None:
    seen: list[float] = []

    async def busy(n: int) -> None:
        for _ in range(n):
            seen.append(loop.time())
            await asyncio.sleep(0)  # a yield: other work is ready, no timer is due

    async def main() -> None:
        await asyncio.sleep(2.5)
        await asyncio.gather(busy(100), busy(100))

    run(loop, main())
    assert seen == [2.5] * 200


def test_a_timeout_elapses_in_virtual_time(loop: VirtualTimeLoop) -> None:
    async def main() -> float:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(30):
                await asyncio.Event().wait()  # nothing will ever set it
        return loop.time()

    assert run(loop, main()) == 30


def test_a_loop_with_nothing_to_do_runs_what_another_thread_sends(
    loop: VirtualTimeLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No timer to jump to: the loop polls (a wait of None), and a thread's call still runs.
    polling, select = threading.Event(), loop._jumps.select

    def watched(timeout: float | None = None) -> Any:
        if timeout is None:
            polling.set()
        return select(timeout)

    monkeypatch.setattr(loop._jumps, "select", watched)

    def send(done: asyncio.Future[str]) -> None:
        polling.wait(30)  # once the loop is idle (a rendezvous, not a clock)
        loop.call_soon_threadsafe(done.set_result, "from a thread")

    async def main() -> str:
        done: asyncio.Future[str] = loop.create_future()
        threading.Thread(target=send, args=(done,)).start()
        return await done

    assert run(loop, main()) == "from a thread"
    assert loop.time() == 0


def test_its_repr_says_the_virtual_time(loop: VirtualTimeLoop) -> None:
    run(loop, asyncio.sleep(90.25))
    assert repr(loop) == "<VirtualTimeLoop t=90.250>"
