"""What the engine and the stores agree on: outcomes and their counts, the freshness rule, the
order computations end in, and how a computation's exception reaches its callers."""

from __future__ import annotations

import math
import threading

from hypothesis import given
from hypothesis import strategies as st

from vix_ttl._cache.api import CacheInfo, Outcome, Raised, fresh, next_finish

ages = st.floats(min_value=-1e6, max_value=1e6)
ttls = st.one_of(st.floats(min_value=0, max_value=1e6), st.just(math.inf))


def test_each_outcome_counts_under_the_cache_info_field_of_its_name_in_field_order() -> None:
    # The engine builds a CacheInfo from its counts in Outcome's order.
    assert [outcome.value for outcome in Outcome] == list(CacheInfo._fields[: len(Outcome)])
    assert CacheInfo._fields[len(Outcome) :] == ("maxsize", "currsize")


def test_calls_are_the_sum_of_the_counts_and_the_store_sizes_no_count() -> None:
    info = CacheInfo(5, 2, 1, 3, 4, 1, 1, 2, 1, maxsize=4096, currsize=4000)
    assert info.counts == {
        "hits": 5,
        "misses": 2,
        "stale": 1,
        "bypasses": 3,
        "coalesced": 4,
        "errors": 1,
        "rejected": 1,
        "served_stale": 2,
        "served_on_error": 1,
    }
    assert info.calls == 20


@given(age=ages, stored=ttls, decided=ttls)
def test_fresh_while_younger_than_the_shorter_of_the_stored_and_decided_ttls(
    age: float, stored: float, decided: float
) -> None:
    assert fresh(age, stored, decided) == fresh(age, decided, stored)  # neither TTL stretches the other
    if fresh(age, stored, decided):
        assert 0 <= age < stored and age < decided
        assert fresh(age / 2, stored, decided)  # younger is fresh too
    if age < 0:
        assert not fresh(age, stored, decided)  # stored "in the future": no age to trust


def test_the_boundaries_of_freshness() -> None:
    assert fresh(0.0, 60, 60) and not fresh(60.0, 60, 60)  # served for exactly its TTL, not at its end
    assert not fresh(0.0, 0, 60) and not fresh(0.0, 60, 0)  # a TTL of 0 serves nothing
    assert fresh(1e300, math.inf, math.inf)  # never expires
    assert not fresh(6.0, 60, 5)  # stored in calm for 60 s, read in panic for 5 s
    assert not fresh(6.0, 5, 60)  # stored in panic for 5 s, not stretched when calm returns
    assert not fresh(-1e-9, 60, 60)


def test_finish_tickets_are_unique_and_increasing_across_threads() -> None:
    tickets: list[list[int]] = [[] for _ in range(8)]
    barrier = threading.Barrier(8)

    def take(mine: list[int]) -> None:
        barrier.wait(30)
        mine.extend(next_finish() for _ in range(2000))

    threads = [threading.Thread(target=take, args=(mine,)) for mine in tickets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [ticket for mine in tickets for ticket in mine]
    assert len(set(every)) == len(every)
    assert all(mine == sorted(mine) for mine in tickets)
    assert next_finish() > max(every)


class QuoteError(Exception):
    pass


def test_an_exception_is_raised_as_it_was_when_unshared_and_as_a_copy_each_when_shared() -> None:
    try:
        raise QuoteError("no quote")
    except QuoteError as exc:
        raised = Raised(exc, exc.__traceback__)
    assert raised.raised_by(shared=False) is raised.error
    one, other = raised.raised_by(shared=True), raised.raised_by(shared=True)
    assert one is not raised.error and other is not one
    assert type(one) is QuoteError and one.args == ("no quote",)
    assert one.__traceback__ is raised.traceback  # the computation's frames, no one else's
