"""The production story: 30 min calm, 45 min of panic, calm again, at a steady rate."""

from __future__ import annotations

import pytest

from vix_ttl import Mode, Transition, VIXCircuitBreaker
from vix_ttl.sim.scenario import lineup_leak
from vix_ttl.testing import FakeClock

RATE = 10  # samples per second: the arithmetic is the same at 1,000/s, only slower to run
CALM, PANIC = 30 * 60, 45 * 60


def test_lineup_leak_mode_timeline() -> None:
    clock = FakeClock()
    breaker = VIXCircuitBreaker(clock=clock)  # default 30 min window, 1 s buckets
    events: list[Transition] = []
    breaker.subscribe(events.append)
    recorded = 0
    end = CALM + PANIC + 30 * 60
    for tick in range(end * RATE):
        clock.set(tick / RATE)
        breaker.record("panic" if CALM <= clock() < CALM + PANIC else "normal")
        recorded += 1
        if tick == (CALM + PANIC) * RATE - 1:
            at_panic_end = breaker.metrics()
    assert recorded == end * RATE

    # The ratio is the share of the last 30 min that was panic: it reaches 50 %
    # after 15 min of panic and 80 % after 24 min; after the panic the window
    # drains below 60 % 12 min later and below 30 % 21 min later. The window
    # moves bucket by bucket, so each time is exact to one bucket (1 s).
    expected = [
        (Mode.NORMAL, Mode.HIGH_VOLATILITY, CALM + 15 * 60),
        (Mode.HIGH_VOLATILITY, Mode.CIRCUIT_OPEN, CALM + 24 * 60),
        (Mode.CIRCUIT_OPEN, Mode.HIGH_VOLATILITY, CALM + PANIC + 12 * 60),
        (Mode.HIGH_VOLATILITY, Mode.NORMAL, CALM + PANIC + 21 * 60),
    ]
    assert [(e.old, e.new) for e in events] == [(old, new) for old, new, _ in expected]
    for event, (_, _, at) in zip(events, expected, strict=True):
        assert abs(event.at - at) <= 1, (event, at)
    assert at_panic_end["mode"] == "circuit_open"
    assert at_panic_end["panic_ratio"] == 1.0
    assert at_panic_end["samples"] == 1800 * RATE  # 30 min of samples, not 1,800 samples
    assert abs(at_panic_end["time_in_mode_seconds"]["circuit_open"] - 21 * 60) <= 1


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        (
            {"rate": 1e9},
            r"scenario rate 1e\+09/s for 6300 s is 6\.3e\+12 requests per strategy, over the limit",
        ),
        ({"rate": 1e18}, r"over the limit of 1e\+09 requests"),
        ({"step": 1e-6}, r"scenario step 1e-06 s over 6300 s is 6\.3e\+09 steps, over the limit of 1e\+09"),
        ({"rate": 100_000, "latency": 20.0}, r"up to 2e\+06 calls waiting at once, over the limit of 1e\+06"),
    ],
)
def test_a_run_that_cannot_finish_is_refused_before_it_starts(settings: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        lineup_leak(**settings)


def test_the_limits_leave_room_for_every_sensible_run() -> None:
    from vix_ttl.sim.scenario import MAX_REQUESTS

    week = lineup_leak(
        calm_minutes=7 * 24 * 60, panic_minutes=0, after_minutes=0, rate=MAX_REQUESTS / 604_800
    )
    assert week.rate * week.duration == pytest.approx(MAX_REQUESTS)
    assert lineup_leak().rate * lineup_leak().duration < MAX_REQUESTS / 100  # the default run, 6.3 million
