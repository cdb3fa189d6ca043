"""@vix_cached, the factory: the store a cache gets, the breaker a function gets, what it cannot decorate.

(What it returns: tests/test_proxy.py; its options: tests/test_options.py; the call: tests/test_engine.py.)
"""

from __future__ import annotations

from typing import Any

import cachetools
import pytest
from aiocache import SimpleMemoryCache

from vix_ttl import Decision, Mode, Strategy, TTLPolicy, VIXCircuitBreaker, VixStatus, get_breaker
from vix_ttl.decorator import vix_cached
from vix_ttl.testing import FakeClock


def normal(*args: Any, **kwargs: Any) -> str:
    return "normal"


def test_breaker_by_name_instance_or_default() -> None:
    odds = get_breaker("odds")
    assert vix_cached(1, status=normal, breaker="odds")(lambda: 1).breaker is odds
    own = VIXCircuitBreaker()
    assert vix_cached(1, status=normal, breaker=own)(lambda: 1).breaker is own


def test_without_breaker_each_function_has_its_own_named_after_its_namespace() -> None:
    @vix_cached(60, status=lambda match: "panic")
    def odds(match: int) -> int:
        return match

    @vix_cached(5, status=lambda user: "normal")
    def user_profile(user: int) -> int:
        return user

    for _ in range(100):  # sustained panic in odds: its breaker opens
        odds(1)
    assert odds.breaker.mode is Mode.CIRCUIT_OPEN
    # An unrelated function keeps its own breaker, and its 5 s TTL (0.2: 60 s, CIRCUIT_OPEN).
    assert user_profile.breaker is not odds.breaker
    assert user_profile.breaker.decide("normal", 5) == Decision(
        5.0, Strategy.BASE, Mode.NORMAL, VixStatus.NORMAL
    )
    assert odds.breaker is get_breaker(f"{__name__}.{odds.__qualname__}")
    # Functions share a breaker by naming it, or by sharing a namespace.
    shared = vix_cached(1, status=normal, namespace="pricing")(lambda: 1)
    assert shared.breaker is get_breaker("pricing")
    assert vix_cached(1, status=normal, breaker="pricing")(lambda: 2).breaker is shared.breaker


def test_aiocache_caches_serve_async_functions_only() -> None:
    with pytest.raises(TypeError, match="an aiocache cache serves async functions only"):

        @vix_cached(60, status=normal, cache=SimpleMemoryCache())
        def price(x: int) -> int:
            return x


def test_a_cache_no_store_accepts_is_refused_at_decoration_time() -> None:
    with pytest.raises(TypeError, match=r"cache must be None, a cachetools cache .*, got \[1\]"):
        vix_cached(60, status=normal, cache=[1])
    with pytest.raises(
        TypeError, match=r"cache must be a cache instance, got the class LRUCache: write cache="
    ):
        vix_cached(60, status=normal, cache=cachetools.LRUCache)


def test_decorating_a_non_callable() -> None:
    with pytest.raises(TypeError, match="can only decorate a callable"):
        vix_cached(60, status=normal)(42)  # type: ignore[call-overload]


def test_the_breakers_policy_cannot_be_swapped_under_its_decisions() -> None:
    breaker = VIXCircuitBreaker(clock=FakeClock())
    with pytest.raises(AttributeError):
        breaker.policy = TTLPolicy.default()  # type: ignore[misc]


def test_generators_are_refused() -> None:
    with pytest.raises(TypeError, match=r"cannot cache the generator .*odds_stream: .* return a list"):

        @vix_cached(60, status=lambda: "normal")
        def odds_stream() -> Any:
            yield 2.0
