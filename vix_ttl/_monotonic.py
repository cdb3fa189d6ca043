"""Monotonic reads: a process never serves a value of a key older than one it served or wrote.

On a shared store, an older entry can come back: a slower process writes the value
it computed before another's, or anyone who can write to the server copies back an
entry it saved. Each entry holds when its computation ended; a process remembers,
per key, the newest such time it has served or written, and treats an entry older
than that as gone. Memory is bounded: the keys least recently used are forgotten
first (``NEWEST_KEYS`` per function or serializer).
"""

from __future__ import annotations

import math
from collections.abc import Hashable

import cachetools

__all__ = ["NEWEST_KEYS", "Newest"]

NEWEST_KEYS = 16384
"""Keys whose newest value's time one function (or one serializer) remembers."""


class Newest:
    """Per key, when the computation of the newest value served or written ended."""

    __slots__ = ("_times",)

    def __init__(self, maxsize: int = NEWEST_KEYS) -> None:
        self._times: cachetools.LRUCache[Hashable, float] = cachetools.LRUCache(maxsize)

    def older(self, key: Hashable, stored_at: float) -> bool:
        """Whether an entry of *key* stored at *stored_at* is older than one served or written."""
        return stored_at < self._times.get(key, -math.inf)

    def note(self, key: Hashable, stored_at: float) -> None:
        """A value of *key* stored at *stored_at* was served or written."""
        if stored_at > self._times.get(key, -math.inf):
            self._times[key] = stored_at
