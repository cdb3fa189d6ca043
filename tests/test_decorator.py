"""@vix_cached as users meet it: introspection, methods, bad input at decoration time."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import cachetools
import pytest
from aiocache import SimpleMemoryCache

from vix_ttl import Decision, Mode, Strategy, TTLPolicy, VIXCircuitBreaker, VixStatus, get_breaker
from vix_ttl.decorator import vix_cached
from vix_ttl.testing import FakeClock


def normal(*args: Any, **kwargs: Any) -> str:
    return "normal"


def test_keeps_name_doc_signature_and_wrapped() -> None:
    def price(match_id: int, market: str = "1x2", *, live: bool = False) -> float:
        """The price of a market."""
        return 1.0

    cached = vix_cached(60, status=normal)(price)
    assert cached.__name__ == "price"
    assert cached.__qualname__ == price.__qualname__
    assert cached.__doc__ == "The price of a market."
    assert inspect.signature(cached) == inspect.signature(price)
    assert cached.__wrapped__ is price
    assert not inspect.iscoroutinefunction(cached)


def test_async_functions_stay_coroutine_functions() -> None:
    async def price(x: int) -> int:
        return x

    cached = vix_cached(60, status=normal)(price)
    assert inspect.iscoroutinefunction(cached)
    assert asyncio.run(cached(3)) == 3


def test_methods_classmethods_staticmethods_and_their_keys() -> None:
    calls: list[tuple[str, Any]] = []

    class Book:
        def __init__(self, margin: float) -> None:
            self.margin = margin

        @vix_cached(60, status=normal)
        def price(self, odds: float) -> float:
            calls.append(("price", self.margin))
            return odds * self.margin

        @vix_cached(60, status=normal)
        @classmethod
        def name(cls, suffix: str) -> str:
            calls.append(("name", suffix))
            return cls.__name__ + suffix

        @vix_cached(60, status=normal)
        @staticmethod
        def double(x: int) -> int:
            calls.append(("double", x))
            return 2 * x

    a, b = Book(1.0), Book(2.0)
    assert [a.price(2.0), a.price(2.0), b.price(2.0)] == [2.0, 2.0, 4.0]  # the instance is in the key
    assert [Book.name("!"), a.name("!")] == ["Book!", "Book!"]
    assert [a.double(3), Book.double(3)] == [6, 6]
    assert calls == [("price", 1.0), ("price", 2.0), ("name", "!"), ("double", 3)]
    assert a.price.cache_info().hits == 1
    assert a.price.invalidate(2.0) is True
    assert b.price.invalidate(2.0) is True
    assert a.price.invalidate(2.0) is False
    assert a.price.breaker is b.price.breaker  # the function's own, whatever the instance


def test_the_callables_get_exactly_the_functions_arguments_self_and_cls_included() -> None:
    seen: list[Any] = []

    def ttl(owner: Any, odds: float, *, live: bool = False) -> float:
        seen.append(("ttl", owner, odds, live))
        return 30

    def status(owner: Any, odds: float, *, live: bool = False) -> str:
        seen.append(("status", owner, odds, live))
        return "normal"

    def key(owner: Any, odds: float, *, live: bool = False) -> Any:
        seen.append(("key", owner, odds, live))
        return (odds, live)

    def plain_status(odds: float) -> str:
        seen.append(("status", odds))
        return "normal"

    class Book:
        @vix_cached(ttl, status=status, key=key)
        def price(self, odds: float, *, live: bool = False) -> float:
            return odds

        @vix_cached(ttl, status=status, key=key)
        @classmethod
        def fair(cls, odds: float, *, live: bool = False) -> float:
            return odds

        @vix_cached(30, status=plain_status)
        @staticmethod
        def plain(odds: float) -> float:
            seen.append(("plain", odds))
            return odds

    book = Book()
    book.price(1.5, live=True)
    assert seen == [("status", book, 1.5, True), ("ttl", book, 1.5, True), ("key", book, 1.5, True)]
    seen.clear()
    Book.price(book, 1.5, live=True)  # through the class: the same arguments, and a hit
    assert seen == [("status", book, 1.5, True), ("ttl", book, 1.5, True), ("key", book, 1.5, True)]
    assert Book.price.cache_info().hits == 1
    seen.clear()
    book.fair(2.5)
    assert seen == [("status", Book, 2.5, False), ("ttl", Book, 2.5, False), ("key", Book, 2.5, False)]
    seen.clear()
    book.plain(3.5)
    assert seen == [("status", 3.5), ("plain", 3.5)]  # no instance: nothing added


def test_a_status_method_of_the_instance_works() -> None:
    class Book:
        def __init__(self, status: str) -> None:
            self.current = status
            self.computes = 0

        @vix_cached(60, status=lambda self, match: self.current)
        def price(self, match: int) -> int:
            self.computes += 1
            return match

    calm, hot = Book("normal"), Book("panic")
    calm.price(1), calm.price(1), hot.price(1), hot.price(1)
    assert (calm.computes, hot.computes) == (1, 2)  # panic in calm: bypassed
    assert Book.price.cache_info().bypasses == 2


def test_the_key_is_exactly_what_key_returns_instance_not_added() -> None:
    class Book:
        @vix_cached(60, status=lambda self, match: "normal", key=lambda self, match: match)
        def price(self, match: int) -> int:
            return id(self)

    a, b = Book(), Book()
    assert a.price(1) == b.price(1)  # one key for both instances: the caller's choice


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
