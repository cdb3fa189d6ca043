"""The registry of named breakers: one breaker per name in the process, like ``logging.getLogger``."""

from __future__ import annotations

import threading

import pytest

from vix_ttl import VIXCircuitBreaker, get_breaker
from vix_ttl.registry import known_breakers
from vix_ttl.testing import FakeClock
from vix_ttl.window import RollingWindow


def test_registry_shares_breakers_by_name() -> None:
    odds = get_breaker("odds", window_seconds=60)
    assert get_breaker("odds") is odds
    assert get_breaker("odds", window_seconds=60) is odds
    assert get_breaker() is get_breaker("default")
    assert odds.name == "odds"
    assert known_breakers() == {"odds": odds, "default": get_breaker()}
    with pytest.raises(ValueError, match="'odds' already exists with other settings for window_seconds"):
        get_breaker("odds", window_seconds=120)


def test_a_window_given_to_the_breaker_is_what_its_config_and_the_registry_see(vix_clock: FakeClock) -> None:
    window = RollingWindow(120, 4)
    breaker = get_breaker("sized", window=window, clock=vix_clock)
    assert breaker.window is window
    assert (breaker.config.window_seconds, breaker.config.bucket_seconds) == (120, 4)
    assert get_breaker("sized", window_seconds=120) is breaker
    with pytest.raises(ValueError, match="window_seconds"):
        get_breaker("sized", window_seconds=1800)  # the default's value, but not this breaker's


def test_none_asks_the_registry_for_the_default_as_the_constructor_does() -> None:
    odds = get_breaker("odds-defaults")
    assert get_breaker("odds-defaults", thresholds=None, policy=None) is odds


def test_another_window_for_an_existing_breaker_is_refused() -> None:
    window = RollingWindow(120, 4)
    breaker = get_breaker("windowed", window=window)
    assert get_breaker("windowed", window=window) is breaker
    with pytest.raises(ValueError, match="'windowed' already exists with other settings for window;"):
        get_breaker("windowed", window=RollingWindow(120, 4))  # equal in size, but not its window


def test_a_clash_names_every_setting_that_differs() -> None:
    get_breaker("odds", window_seconds=60, min_samples=5, stabilization_seconds=30)
    with pytest.raises(ValueError, match=r"for min_samples, window_seconds; get it by name alone"):
        get_breaker("odds", window_seconds=120, min_samples=6, stabilization_seconds=30)


def test_threads_asking_for_one_name_at_once_get_one_breaker() -> None:
    barrier, got = threading.Barrier(16), []

    def ask() -> None:
        barrier.wait(30)  # all at once: a rendezvous, not a clock
        got.append(get_breaker("contended"))

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 16
    assert all(breaker is got[0] for breaker in got)
    assert known_breakers() == {"contended": got[0]}


def test_known_breakers_is_a_copy() -> None:
    odds = get_breaker("odds")
    seen = known_breakers()
    seen["odds"] = VIXCircuitBreaker(name="odds")
    seen["other"] = VIXCircuitBreaker(name="other")
    assert known_breakers() == {"odds": odds}
    assert get_breaker("odds") is odds
