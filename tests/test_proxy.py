"""What ``@vix_cached`` returns: the function as it was (name, docstring, signature, kind), bound
like it (methods, classmethods, staticmethods), with the cache's controls."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from vix_ttl import VIXCircuitBreaker
from vix_ttl._proxy import engine_of
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


class Book:
    """A class whose methods of every kind are cached."""

    def __init__(self, margin: float) -> None:
        self.margin = margin

    @vix_cached(60, status=normal)
    def price(self, odds: float, *, live: bool = False) -> float:
        """The price of a market."""
        return odds * self.margin

    @vix_cached(60, status=normal)
    async def later(self, odds: float) -> float:
        """The price, awaited."""
        await asyncio.sleep(0)  # a yield: callers of one key meet on its computation
        return odds

    @vix_cached(60, status=normal)
    @classmethod
    def name(cls, suffix: str) -> str:
        """The book's name."""
        return cls.__name__ + suffix

    @vix_cached(60, status=normal)
    @staticmethod
    def double(x: int) -> int:
        """Twice x."""
        return 2 * x


def test_methods_of_every_kind_keep_their_name_doc_and_signature_bound_or_not() -> None:
    book = Book(1.0)
    assert (Book.price.__name__, Book.price.__doc__) == ("price", "The price of a market.")
    assert Book.price.__qualname__ == "Book.price"
    assert str(inspect.signature(Book.price)) == "(self, odds: 'float', *, live: 'bool' = False) -> 'float'"
    assert str(inspect.signature(book.price)) == "(odds: 'float', *, live: 'bool' = False) -> 'float'"
    assert (book.name.__name__, book.name.__doc__) == ("name", "The book's name.")
    assert str(inspect.signature(Book.name)) == "(suffix: 'str') -> 'str'"  # cls bound, as for a classmethod
    assert (book.double.__name__, book.double.__doc__) == ("double", "Twice x.")
    assert str(inspect.signature(book.double)) == "(x: 'int') -> 'int'"
    assert inspect.iscoroutinefunction(book.later) and inspect.iscoroutinefunction(Book.later)
    assert not inspect.iscoroutinefunction(book.price)


def test_every_control_of_a_method_of_any_kind_is_its_functions_keyed_with_its_instance() -> None:
    book = Book(2.0)
    assert book.price(1.5) == book.price(1.5) == 3.0
    assert book.price.cache_info() == Book.price.cache_info() and book.price.cache_info().hits == 1
    assert book.price.breaker is Book.price.breaker
    assert book.price.cache is Book.price.cache
    assert engine_of(book.price) is engine_of(Book.price)
    assert book.price.in_flight(1.5) == 0
    assert Book.price.invalidate(book, 1.5) is True  # through the class: self given
    assert book.price.invalidate(1.5) is False  # gone already
    assert Book.name("!") == "Book!" and Book.name.invalidate("!") is True  # cls in the key, as for its calls
    assert book.double(3) == 6 and Book.double.invalidate(3) is True  # no instance in the key
    book.double.cache_clear()
    assert book.double.cache_info().calls == 0


def test_a_classmethods_controls_are_keyed_with_its_class_as_its_calls_are() -> None:
    assert Book.name("?") == "Book?"
    assert Book.name.invalidate("?") is True
    assert Book(1.0).name("!") == "Book!"  # read from an instance, a classmethod still gets the class
    assert Book(1.0).name.invalidate("!") is True


def test_a_coroutine_methods_controls_are_coroutines_and_count_its_calls_in_flight() -> None:
    book = Book(1.0)

    async def main() -> None:
        calls = [asyncio.ensure_future(book.later(2.0)) for _ in range(3)]
        await asyncio.sleep(0)
        assert book.later.in_flight(2.0) == 2  # keyed with its instance, as the calls are
        assert await asyncio.gather(*calls) == [2.0] * 3
        invalidated = book.later.invalidate(2.0)
        assert inspect.iscoroutine(invalidated) and await invalidated is True
        cleared = book.later.cache_clear()
        assert inspect.iscoroutine(cleared)
        await cleared

    asyncio.run(main())


def test_each_function_calls_its_own_engine() -> None:
    breaker = VIXCircuitBreaker(clock=FakeClock())
    one = vix_cached(60, status=normal, breaker=breaker)(lambda x: ("one", x))
    two = vix_cached(60, status=normal, breaker=breaker)(lambda x: ("two", x))
    assert (one(1), two(1), one(1)) == (("one", 1), ("two", 1), ("one", 1))
    assert (one.cache_info().hits, two.cache_info().hits) == (1, 0)
    assert type(one).__call__ is not type(two).__call__


def test_a_staticmethods_controls_ignore_the_instance_as_its_calls_do() -> None:
    class Odds:
        @vix_cached(60, status=lambda x: "normal", breaker=VIXCircuitBreaker())
        @staticmethod
        def double(x: int) -> int:
            return 2 * x

    assert Odds().double(2) == 4
    assert Odds().double.invalidate(2) is True
    assert Odds.double(3) == 6 and Odds.double.invalidate(3) is True


def test_dir_shows_the_caches_controls_so_a_repl_completes_them() -> None:
    class Odds:
        @vix_cached(60, status=lambda self, x: "normal", breaker=VIXCircuitBreaker())
        def price(self, x: int) -> int:
            return x

    @vix_cached(60, status=lambda x: "normal", breaker=VIXCircuitBreaker())
    def price(x: int) -> int:
        return x

    controls = {"breaker", "cache", "cache_info", "cache_clear", "invalidate", "in_flight"}
    for function in (price, Odds().price, Odds.price):
        assert controls <= set(dir(function)) and "__call__" in dir(function)
