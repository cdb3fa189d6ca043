from __future__ import annotations

import pytest

from vix_ttl.testing import FakeClock

pytest_plugins = ["pytester"]


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(100)
    assert clock() == 100.0
    assert clock.advance(2.5) == 102.5
    assert clock.set(200) == 200.0
    assert clock() == 200.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c.advance(-1), "seconds must be >= 0"),
        (lambda c: c.set(5), "time cannot go back"),
        (lambda c: c.advance(float("nan")), "finite number"),
        (lambda c: c.set("soon"), "finite number"),
    ],
)
def test_fake_clock_refuses_bad_moves(call, match) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(10)
    with pytest.raises((ValueError, TypeError), match=match):
        call(clock)
    assert clock() == 10.0


def test_the_pytest_plugin_gives_users_a_clock_and_a_breaker(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        def test_user_code(vix_clock, vix_breaker):
            for _ in range(20):
                vix_breaker.record("panic")
            assert vix_breaker.mode == "circuit_open"
            vix_clock.advance(1800)
            assert vix_breaker.mode == "normal"
        """
    )
    # No -p: the fixtures come from the pytest11 entry point, as for any user.
    pytester.runpytest().assert_outcomes(passed=1)
