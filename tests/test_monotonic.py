"""Monotonic reads: per key, a process never serves a value placed before one it has seen or written."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from vix_ttl._monotonic import AHEAD_SECONDS, Newest

times = st.integers(0, 400).map(lambda q: q / 4)
operations = st.lists(
    st.tuples(st.sampled_from(["see", "place"]), st.sampled_from("abc"), times, times), max_size=80
)


@given(operations)
def test_nothing_older_than_what_was_seen_or_written_is_ever_served(
    ops: list[tuple[str, str, float, float]],
) -> None:
    newest = Newest()
    latest: dict[str, float] = {}  # the model: the latest place of each key seen or written
    for op, key, place, now in ops:
        before = latest.get(key, -math.inf)
        if op == "see":
            served = newest.see(key, place, now)
            assert served == (before <= place <= now + AHEAD_SECONDS)
            if served:
                latest[key] = max(before, place)
        else:
            placed = newest.place(key, now)
            assert placed > before  # after everything seen: readers never take it for an older value
            assert placed == now if now > before else placed == math.nextafter(before, math.inf)
            latest[key] = placed


def test_the_same_place_again_is_served_again() -> None:
    newest = Newest()
    assert newest.see("odds", 100.0, now=100.0)
    assert newest.see("odds", 100.0, now=130.0)  # the same entry, read again
    assert not newest.see("odds", 99.5, now=130.0)  # written before it: a replay, or a late writer


def test_a_place_more_than_ahead_seconds_past_now_is_refused_and_not_remembered() -> None:
    newest = Newest()
    assert newest.see("odds", 1000.0 + AHEAD_SECONDS, now=1000.0)  # a clock up to a minute ahead
    assert not newest.see("other", math.nextafter(1000.0 + AHEAD_SECONDS, math.inf), now=1000.0)
    assert not newest.see("other", 1.8e308, now=1000.0)  # forged without a secret
    # Had it been remembered, this process's own writes would go after 1.8e308, where every reader
    # refuses them: written now, they are placed now.
    assert newest.place("other", now=1001.0) == 1001.0


def test_a_write_from_a_clock_behind_goes_just_after_what_was_seen() -> None:
    newest = Newest()
    assert newest.see("odds", 500.0, now=500.0)  # another host's entry, its clock 30 s ahead of ours
    placed = newest.place("odds", now=470.0)
    assert placed == math.nextafter(500.0, math.inf)
    assert newest.see("odds", placed, now=470.0)  # its own value is served back to it
    assert newest.place("odds", now=470.0) > placed


def test_keys_are_apart() -> None:
    newest = Newest()
    assert newest.see("a", 100.0, now=100.0)
    assert newest.see("b", 50.0, now=100.0)


def test_memory_is_bounded_the_least_recently_used_keys_forgotten_first() -> None:
    newest = Newest(maxsize=2)
    assert newest.see("a", 100.0, now=100.0)
    assert newest.see("b", 100.0, now=100.0)
    assert newest.see("a", 100.0, now=100.0)  # a used again: b is now the least recently used
    assert newest.see("c", 100.0, now=100.0)  # one key too many: b goes
    assert newest.see("b", 1.0, now=100.0)  # forgotten: an older place is taken again
    assert not newest.see("c", 1.0, now=100.0)
