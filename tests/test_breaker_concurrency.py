"""Threads and asyncio tasks hammering one breaker: exact totals, each transition once."""

from __future__ import annotations

import asyncio
import threading

from vix_ttl import Mode, Transition, VIXCircuitBreaker, VixStatus
from vix_ttl.testing import FakeClock

THREADS, RECORDS = 8, 50_000


def assert_one_chain(events: list[Transition], start: Mode, end: Mode) -> None:
    """Published hops link up: a hop published twice or lost would break the chain."""
    mode = start
    for event in events:
        assert event.old is mode
        mode = event.new
    assert mode is end


def test_threads_lose_no_update_and_publish_every_transition_once() -> None:
    clock = FakeClock()
    breaker = VIXCircuitBreaker(min_samples=0, clock=clock)
    events: list[Transition] = []
    breaker.subscribe(events.append)
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        # Half the threads panic, half are calm, in bursts: the ratio swings
        # across the thresholds many times while the threads interleave.
        try:
            barrier.wait()
            for i in range(RECORDS):
                panic = (index % 2 == 0) == ((i // 5_000) % 2 == 0)
                breaker.record(VixStatus.PANIC if panic else VixStatus.NORMAL)
                if i % 1000 == 0:
                    breaker.decide("warning", 30)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    metrics = breaker.metrics()
    assert metrics["samples"] == THREADS * RECORDS
    assert metrics["panic_samples"] == THREADS * RECORDS // 2
    assert sum(metrics["decisions"].values()) == THREADS * RECORDS // 1000
    assert metrics["mode_changes_total"] == len(events) > 0
    assert_one_chain(events, Mode.NORMAL, breaker.mode)


def test_a_transition_held_up_on_its_way_out_is_not_overtaken() -> None:
    """A thread whose transitions are still going out (a slow listener) when another thread
    changes the mode again: listeners see the later hop after the earlier ones, never before
    (two threads publishing at once delivered them swapped)."""
    breaker = VIXCircuitBreaker(min_samples=0, clock=FakeClock())
    held, go_on = threading.Event(), threading.Event()
    seen: list[Transition] = []

    def slow(hop: Transition) -> None:
        if not held.is_set():  # the first hop: held up until the later one is applied
            held.set()
            assert go_on.wait(10)

    breaker.subscribe(slow)
    breaker.subscribe(seen.append)
    first = threading.Thread(target=breaker.record, args=("panic",))  # NORMAL up to CIRCUIT_OPEN
    first.start()
    assert held.wait(10)
    applied = breaker.metrics()["mode_changes_total"]

    def calm_down() -> None:
        while breaker.metrics()["mode_changes_total"] == applied:
            breaker.record("normal")

    later = threading.Thread(target=calm_down)
    later.start()
    later.join(0.5)  # its hop is applied; before the fix, it went out here
    go_on.set()
    first.join(10)
    later.join(10)
    assert breaker.metrics()["mode_changes_total"] == len(seen) > applied
    assert_one_chain(seen, Mode.NORMAL, breaker.mode)


def test_threads_with_a_moving_clock_keep_the_window_consistent() -> None:
    clock = FakeClock()
    breaker = VIXCircuitBreaker(window_seconds=10, min_samples=0, clock=clock)
    torn: list[dict[str, object]] = []

    def ticker() -> None:
        for _ in range(5_000):  # buckets evicted while the workers record
            clock.advance(0.01)

    def worker() -> None:
        for i in range(5_000):
            breaker.record("panic")
            if i % 500 == 0:  # a snapshot read while others record and the clock moves
                snapshot = breaker.metrics()
                if snapshot["samples"] != snapshot["panic_samples"] or snapshot["panic_ratio"] not in (
                    0.0,
                    1.0,
                ):
                    torn.append(snapshot)

    threads = [threading.Thread(target=ticker)] + [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert torn == []
    metrics = breaker.metrics()
    assert 0 < metrics["samples"] == metrics["panic_samples"] <= 4 * 5_000
    clock.advance(10)
    assert (breaker.samples, breaker.mode) == (0, Mode.NORMAL)


async def test_asyncio_tasks_share_one_breaker() -> None:
    breaker = VIXCircuitBreaker(min_samples=0, clock=FakeClock())
    events: list[Transition] = []
    breaker.subscribe(events.append)

    async def task(panic: bool) -> None:
        for i in range(2_000):
            breaker.record("panic" if panic else "normal")
            if i % 100 == 0:
                await asyncio.sleep(0)  # yield to the other tasks, no wall-clock wait

    await asyncio.gather(*(task(i % 2 == 0) for i in range(20)))
    assert breaker.samples == 40_000
    assert breaker.panic_ratio == 0.5
    assert_one_chain(events, Mode.NORMAL, breaker.mode)
