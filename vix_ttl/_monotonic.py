"""Monotonic reads: a process never serves a value of a key older than one it served or wrote.

On a shared store, an older entry can come back: a slower process writes the value
it computed before another's, or anyone who can write to the server copies back an
entry it saved. Each entry holds its place in the order of its key's values; a
process remembers, per key, the latest place it has seen (served, written, or read
in a valid entry), and treats an entry placed before that as gone.

Places are times, kept in order the way a hybrid logical clock keeps them: a writer
places its value at its wall-clock time of writing, or just after the latest place
it has seen for the key if that is later. So two processes whose clocks disagree,
or a clock stepped back, never make a process's own writes look older than what it
has seen: they are placed after it. Memory is bounded: the keys least recently used
are forgotten first (``NEWEST_KEYS`` per function or serializer).
"""

from __future__ import annotations

import math
from collections.abc import Hashable

import cachetools

__all__ = ["AHEAD_SECONDS", "NEWEST_KEYS", "Newest"]

NEWEST_KEYS = 16384
"""Keys whose newest value's time one function (or one serializer) remembers."""
AHEAD_SECONDS = 60.0
"""How far past this process's clock a value may be placed and still be seen: a place
further ahead (a clock far off, or forged without a secret) would push this process's
own writes past it, where every reader refuses them."""


class Newest:
    """Per key, the latest place among its values this process has seen."""

    __slots__ = ("_places",)

    def __init__(self, maxsize: int = NEWEST_KEYS) -> None:
        self._places: cachetools.LRUCache[Hashable, float] = cachetools.LRUCache(maxsize)

    def see(self, key: Hashable, place: float, now: float) -> bool:
        """Whether an entry of *key* at *place* may be served (it comes before no value already
        seen, and is not placed more than ``AHEAD_SECONDS`` after *now*); when it may, it is
        noted as seen. One lookup: this is on the hit path."""
        latest = self._places.get(key, -math.inf)
        if place < latest or place > now + AHEAD_SECONDS:
            return False
        if place > latest:
            self._places[key] = place
        return True

    def place(self, key: Hashable, now: float) -> float:
        """Where a value of *key* written *now* goes: now, or just after the latest seen; noted."""
        latest = self._places.get(key, -math.inf)
        place = now if now > latest else math.nextafter(latest, math.inf)
        self._places[key] = place
        return place
