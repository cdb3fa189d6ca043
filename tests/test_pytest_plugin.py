"""The pytest plugin vix_ttl ships: the fixtures ``vix_clock`` and ``vix_breaker`` for its users."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


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


def test_each_test_gets_a_clock_at_zero_and_a_breaker_of_its_own(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        from vix_ttl import get_breaker

        def test_first(vix_clock, vix_breaker):
            assert vix_clock() == 0.0 and vix_breaker.clock is vix_clock
            vix_clock.advance(50)
            vix_breaker.record("panic")
            assert vix_breaker.samples == 1

        def test_second(vix_clock, vix_breaker):
            assert vix_clock() == 0.0  # nothing left of the first test's clock
            assert vix_breaker.samples == 0 and vix_breaker.mode == "normal"
            assert vix_breaker.name == "test"
            assert get_breaker("test") is not vix_breaker  # not in the registry: nothing shared
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)
