from __future__ import annotations

import pytest

from vix_ttl import get_breaker
from vix_ttl.testing import FakeClock, forget_breakers


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(100)
    assert clock() == 100.0
    assert clock.advance(2.5) == 102.5
    assert clock.set(200) == 200.0
    assert clock() == 200.0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda c: c.advance(-1), ValueError, "advance seconds must be a finite number of seconds >= 0"),
        (lambda c: c.set(5), ValueError, "time cannot go back"),
        (lambda c: c.advance(float("nan")), ValueError, "finite number"),
        (lambda c: c.set(float("inf")), ValueError, "set t must be a finite number"),
        (lambda c: c.set("soon"), TypeError, "set t must be a number of seconds, got 'soon'"),
        (lambda c: c.advance(None), TypeError, "advance seconds must be a number"),
    ],
)
def test_fake_clock_refuses_bad_moves(call, error, match) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(10)
    with pytest.raises(error, match=match):
        call(clock)
    assert clock() == 10.0


def test_forget_breakers_gives_each_test_fresh_breakers_by_name() -> None:
    first = get_breaker("odds")
    forget_breakers()
    assert get_breaker("odds") is not first
    first.record("panic")  # a breaker handed out before keeps working
