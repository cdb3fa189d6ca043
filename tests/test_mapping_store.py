"""The in-process store: a cachetools cache or any MutableMapping behind a lock, entries aged on
the store's clock, read and written as the engine's ``Store``."""

from __future__ import annotations

import gc
import math
import sys
import threading
from typing import Any

import cachetools
import pytest

from tests.logs import captured_logs
from vix_ttl import VIXCircuitBreaker
from vix_ttl._cache.api import Entry, Outcome, Written
from vix_ttl._cache.engine import drive
from vix_ttl._proxy import engine_of
from vix_ttl._stores.mapping import MappingStore
from vix_ttl.decorator import vix_cached
from vix_ttl.testing import FakeClock


def normal(*args: Any, **kwargs: Any) -> str:
    return "normal"


def test_the_default_store_is_a_bounded_fifo() -> None:
    @vix_cached(60, status=normal, maxsize=3, breaker=VIXCircuitBreaker(clock=FakeClock()))
    def price(x: int) -> int:
        return x

    for x in range(10):
        price(x)
    assert isinstance(price.cache, cachetools.FIFOCache)
    assert len(price.cache) == 3


def test_any_mutable_mapping_is_a_store() -> None:
    store: dict[Any, Any] = {}

    @vix_cached(60, status=normal, cache=store, breaker=VIXCircuitBreaker(clock=FakeClock()))
    def price(x: int) -> int:
        return x

    price(1)
    assert len(store) == 1
    assert price.cache is store


def test_unhashable_arguments_get_a_clear_error() -> None:
    @vix_cached(60, status=normal)
    def price(legs: list[int]) -> int:
        return sum(legs)

    with pytest.raises(TypeError, match=r"vix_cached\(.*price\): the cache key must be hashable .* key="):
        price([1, 2])


def test_clearing_one_function_of_a_shared_mapping_leaves_the_others() -> None:
    shared: dict[Any, Any] = {}
    breaker = VIXCircuitBreaker(clock=FakeClock())

    @vix_cached(60, status=normal, cache=shared, breaker=breaker)
    def f(x: int) -> str:
        return f"f{x}"

    @vix_cached(60, status=normal, cache=shared, breaker=breaker)
    def g(x: int) -> str:
        return f"g{x}"

    f(1), g(1)
    f.cache_clear()
    g(1)
    assert g.cache_info().hits == 1  # g's entry survived f's clear
    assert len(shared) == 1


def test_unhashable_arguments_are_the_callers_error_everywhere() -> None:
    @vix_cached(60, status=normal, breaker=VIXCircuitBreaker(clock=FakeClock()))
    def price(x: Any) -> int:
        return 1

    for control in (price, price.invalidate, price.in_flight):
        with pytest.raises(TypeError, match=r"must be hashable.*key="):
            control([1])


class FlakyStore(dict[Any, Any]):
    """A mapping over a network that may refuse a write."""

    refuse = False

    def __setitem__(self, key: Any, value: Any) -> None:
        if self.refuse:
            raise ConnectionError("write lost")
        super().__setitem__(key, value)


def test_a_bypassed_value_the_store_refused_still_keeps_the_old_one_away() -> None:
    store, state = FlakyStore(), {"status": "normal", "value": "old"}

    @vix_cached(60, status=lambda match: state["status"], cache=store, breaker=VIXCircuitBreaker())
    def odds(match: int) -> str:
        return state["value"]

    assert odds(1) == "old"
    state.update(status="panic", value="new")
    store.refuse = True
    with captured_logs():
        assert odds(1) == "new"  # served, not stored: the entry it replaces is dropped
    store.refuse, state["status"] = False, "normal"
    assert odds(1) == "new"  # never "old" again after "new" was served


def test_cache_info_says_the_store_size_where_the_store_knows_it() -> None:
    @vix_cached(60, status=lambda x: "normal", cache=cachetools.LRUCache(maxsize=3))
    def bounded(x: int) -> int:
        return x

    @vix_cached(60, status=lambda x: "normal", cache={})
    def unbounded(x: int) -> int:
        return x

    for x in range(5):
        bounded(x)
        unbounded(x)
    assert (bounded.cache_info().maxsize, bounded.cache_info().currsize) == (3, 3)
    assert (unbounded.cache_info().maxsize, unbounded.cache_info().currsize) == (None, 5)
    assert bounded.cache_info().counts == {**dict.fromkeys(bounded.cache_info().counts, 0), "misses": 5}
    assert bounded.cache_info().calls == 5


def test_key_function_and_keyword_arguments() -> None:
    computes: list[Any] = []

    @vix_cached(60, status=normal, key=lambda match, **_: match)
    def price(match: int, *, request_id: str) -> int:
        computes.append(request_id)
        return match

    price(1, request_id="a")
    price(1, request_id="b")  # same key: a hit
    assert computes == ["a"]


# -- the store, directly ---------------------------------------------------------------------


def store_of(cache: Any = None, clock: FakeClock | None = None, **options: Any) -> MappingStore:
    """The store of a decorated ``price(match)`` over *cache*, on *clock*."""

    @vix_cached(
        60, status=normal, cache=cache, clock=clock, breaker=VIXCircuitBreaker(clock=FakeClock()), **options
    )
    def price(match: int) -> int:
        return match

    store = engine_of(price).store
    assert isinstance(store, MappingStore)
    return store


def written(at: float, finished: int = 0, delta: float = 0.0) -> Written:
    return Written(ended=at, delta=delta, finished=finished, base=60.0, status="normal")


def test_an_entry_is_a_hit_while_fresh_for_the_ttl_decided_now_then_stale_with_its_value() -> None:
    clock = FakeClock(1000)
    store = store_of(clock=clock)
    assert drive(store.write((7,), "odds", 60, written(1000, delta=0.5), None))
    clock.advance(10)
    outcome, found = drive(store.read((7,), 60, None))
    assert outcome is Outcome.HIT and found is not None
    assert (found.value, found.stored_at, found.age, found.fresh_for, found.delta) == (
        "odds",
        1000,
        10,
        60,
        0.5,
    )
    outcome, found = drive(store.read((7,), 5, None))  # panic: the decided TTL is shorter
    assert outcome is Outcome.STALE and found is not None and found.fresh_for == 5  # kept for an allowance
    assert drive(store.read((8,), 60, None)) == (Outcome.MISS, None)


def test_an_entry_stored_in_the_future_is_stale_and_never_served() -> None:
    clock = FakeClock(1000)
    store = store_of(clock=clock)
    drive(store.write((7,), "odds", 60, written(1030), None))  # written by a clock 30 s ahead
    assert drive(store.read((7,), 60, None)) == (Outcome.STALE, None)  # no age to trust, nothing to serve


def test_a_value_never_replaces_one_whose_computation_ended_later() -> None:
    clock = FakeClock(1000)
    store = store_of(clock=clock)
    drive(store.write((7,), "newer", 60, written(1000, finished=5), None))
    assert drive(store.write((7,), "older", 60, written(1001, finished=3), None))  # ended first, wrote last
    assert store.cache[(7,)].value == "newer"
    drive(store.write((7,), "newest", 60, written(1002, finished=6), None))
    assert store.cache[(7,)] == Entry("newest", 1002, 60, 0.0, 6)


def test_a_ttl_of_zero_stores_nothing_and_drops_the_entry_it_replaces() -> None:
    store = store_of(clock=FakeClock(1000))
    drive(store.write((7,), "calm", 60, written(1000, finished=1), None))
    assert drive(store.write((7,), "panic", 0, written(1000, finished=2), None))
    assert (7,) not in store.cache


def test_a_never_expiring_entry_is_fresh_for_as_long_as_the_ttl_decided() -> None:
    clock = FakeClock(0)
    store = store_of(clock=clock)
    drive(store.write((7,), "odds", math.inf, written(0), None))
    clock.advance(10**9)
    assert drive(store.read((7,), math.inf, None))[0] is Outcome.HIT
    assert drive(store.read((7,), 60, None))[0] is Outcome.STALE


class Broken(dict[Any, Any]):
    """A mapping over a network that is down."""

    def __getitem__(self, key: Any) -> Any:
        raise ConnectionError("down")

    def get(self, key: Any, default: Any = None) -> Any:
        raise ConnectionError("down")

    def pop(self, key: Any, default: Any = None) -> Any:
        raise ConnectionError("down")


def test_a_failing_mapping_fails_open_and_logs_each_operation() -> None:
    store = store_of(Broken())
    with captured_logs() as logs:
        assert drive(store.read((7,), 60, None)) == (Outcome.ERROR, None)
        assert drive(store.write((7,), "odds", 60, written(0), None)) is False
        assert drive(store.delete((7,))) is False
    assert [(log["event"], log["operation"]) for log in logs] == [
        ("cache_backend_failed", "get"),
        ("cache_backend_failed", "set"),
        ("cache_backend_failed", "delete"),
    ]


def test_delete_says_whether_the_entry_was_there() -> None:
    store = store_of()
    drive(store.write((7,), "odds", 60, written(0), None))
    assert drive(store.delete((7,))) is True
    assert drive(store.delete((7,))) is False


def test_in_a_mapping_of_the_users_keys_carry_the_namespace_and_clear_takes_only_its_own() -> None:
    shared: dict[Any, Any] = {"someone else's": 1, ("other", (7,)): 2}
    store = store_of(shared, namespace="odds")
    key = store.key((7,), {})
    assert key == ("odds", (7,))
    drive(store.write(key, "odds", 60, written(0), None))
    drive(store.clear())
    assert shared == {"someone else's": 1, ("other", (7,)): 2}
    own = store_of()
    assert own.key((7,), {}) == (7,) and own.key((7,), {"live": True}) == cachetools.keys.hashkey(
        7, live=True
    )
    keyed = store_of(key=lambda match: f"match-{match}")
    assert keyed.key((7,), {}) == "match-7"


def test_a_key_function_returning_an_unhashable_key_is_the_callers_error() -> None:
    store = store_of(key=lambda match: [match])
    with pytest.raises(TypeError, match=r"the cache key must be hashable \(unhashable type: 'list'\)"):
        store.key((7,), {})


class _Frozen(FlakyStore):
    """A mapping that, refusing, takes no writes and no deletes (a read-only replica, a full disk)."""

    def pop(self, key: Any, default: Any = None) -> Any:
        if self.refuse:
            raise OSError("read-only")
        return super().pop(key, default)


def test_a_value_older_than_one_served_never_comes_back_from_a_store_that_refuses_writes() -> None:
    clock, store, status = FakeClock(), _Frozen(), {"now": "normal"}
    computed = iter([1.5, 3.0, 3.4, 3.6])

    @vix_cached(60, status=lambda m: status["now"], cache=store, breaker=VIXCircuitBreaker(clock=clock))
    def odds(match: int) -> float:
        return next(computed)

    assert odds(1) == 1.5
    store.refuse = True  # 1.5 stays in it, whatever is computed after it
    status["now"] = "panic"
    with captured_logs():
        assert [odds(1), odds(1)] == [3.0, 3.4]
        status["now"] = "normal"
        assert odds(1) == 3.6  # computed: the 1.5 the store kept is older than what was served


def test_functions_sharing_one_cachetools_cache_share_its_lock() -> None:
    shared: cachetools.LRUCache[Any, Any] = cachetools.LRUCache(maxsize=16)  # always full: every write evicts
    functions = [
        vix_cached(
            60, status=lambda x: "normal", cache=shared, namespace=f"fn{n}", breaker=VIXCircuitBreaker()
        )(lambda x, n=n: (n, x))
        for n in range(4)
    ]

    def hammer() -> None:
        for x in range(3_000):
            for function in functions:
                assert function(x % 100) == (functions.index(function), x % 100)

    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch inside cachetools' methods, as on a busy server
    try:
        with captured_logs() as logs:
            threads = [threading.Thread(target=hammer) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        sys.setswitchinterval(switching)
    assert not [log for log in logs if log["event"].startswith("cache_backend")]
    assert sum(function.cache_info().errors for function in functions) == 0


def test_a_store_dropped_while_its_thread_takes_the_lock_table_does_not_deadlock() -> None:
    """A store's lock is released by a finalizer, which the collector may run in the middle of
    another store's set-up, on the same thread, while it holds the lock table."""
    from vix_ttl._stores import mapping

    def set_up_while_one_is_collected() -> None:
        function = vix_cached(60, status=lambda x: "normal", cache={}, namespace="dropped")(lambda x: x)
        with mapping._locks_lock:  # what _lock_of holds when an allocation runs the collector
            del function
            gc.collect()

    worker = threading.Thread(target=set_up_while_one_is_collected, daemon=True)
    worker.start()
    worker.join(10)  # a thread, not a deadline: a deadlock must fail the test, not hang the run
    assert not worker.is_alive()
