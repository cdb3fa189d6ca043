"""A time-based sliding window of samples: a ring of buckets with running totals.

The window counts samples and the panic samples among them over the last
``window_seconds`` of clock time. Time is cut into buckets of
``bucket_seconds``; each bucket keeps its own two counts and the window keeps
their running totals, so adding a sample and reading the totals are O(1)
whatever the request rate, and memory is bounded by the number of buckets.
Moving to a newer bucket subtracts the buckets that fall out (subtract on
evict), as resilience4j's ``SlidingTimeWindowMetrics`` does.

The window knows nothing of modes or thresholds, and nothing of threads:
its owner serializes access (``VIXCircuitBreaker`` holds one lock over the
window and its state machine, so a sample and the decision it causes are one
atomic step).
"""

from __future__ import annotations

import math
import threading
from typing import Any, Protocol

from vix_ttl._checks import check_seconds

__all__ = ["MAX_BUCKETS", "MIN_BUCKET_SECONDS", "RollingWindow", "Window"]

MAX_BUCKETS = 1_000_000
"""The most buckets a window may have: its memory is allocated up front, and bounded."""
MIN_BUCKET_SECONDS = 1e-6
"""The finest bucket: a clock reading (1.7e9 s of wall clock) over it still indexes a bucket."""


class Window(Protocol):
    """What a breaker needs of its window: running totals over the last ``window_seconds``.

    The breaker calls ``add`` and ``advance`` under ``lock`` (its own lock when
    the window brings none), and reads ``total``, ``panics`` and ``ratio``
    under it too. ``RollingWindow`` is one process's window; fleet mode's
    ``RedisWindow`` shares one through Redis and brings the lock its flusher takes.
    """

    window_seconds: float
    bucket_seconds: float
    total: int
    panics: int

    @property
    def ratio(self) -> float:
        """Panic samples / all samples; 0.0 for an empty window."""

    @property
    def lock(self) -> threading.Lock | None:
        """The lock the window's own background work takes, if any."""

    def add(self, now: float, panic: bool) -> None:
        """Count one sample at clock time *now*."""

    def advance(self, now: float) -> None:
        """Drop the samples older than the window at clock time *now*."""

    def reset(self) -> None:
        """Forget every sample."""

    def metrics(self) -> dict[str, Any]:
        """Extra fields for the breaker's ``metrics()``."""


class RollingWindow:
    """Sample and panic counts over the last *window_seconds* of clock time.

    Args:
        window_seconds: How much clock time the window covers.
        bucket_seconds: The resolution of the window; *window_seconds* must be
            a whole multiple of it.

    Raises:
        ValueError: A size is not a finite positive number, the bucket is
            larger than the window, or the window is not a whole number of
            buckets, or it would take more than ``MAX_BUCKETS`` buckets.
    """

    __slots__ = (
        "_counts",
        "_edge",
        "_head",
        "_panic_counts",
        "_slot",
        "bucket_seconds",
        "panics",
        "size",
        "total",
        "window_seconds",
    )

    def __init__(self, window_seconds: float = 1800.0, bucket_seconds: float = 1.0) -> None:
        window = check_seconds("window_seconds", window_seconds, positive=True)
        bucket = check_seconds("bucket_seconds", bucket_seconds, positive=True)
        if bucket < MIN_BUCKET_SECONDS:  # a clock reading over a smaller one overflows an index
            raise ValueError(
                f"bucket_seconds must be at least {MIN_BUCKET_SECONDS} s, got {bucket_seconds!r}"
            )
        if bucket > window:
            raise ValueError(
                f"bucket_seconds ({bucket_seconds!r}) must not exceed window_seconds ({window_seconds!r})"
            )
        if window / bucket > MAX_BUCKETS:
            raise ValueError(
                f"bucket_seconds ({bucket_seconds!r}) is too small for window_seconds ({window_seconds!r}): "
                f"that is {window / bucket:.3g} buckets, at most {MAX_BUCKETS:,} are allowed"
            )
        size = round(window / bucket)
        if abs(size * bucket - window) > 1e-9 * window:
            raise ValueError(
                f"window_seconds ({window_seconds!r}) must be a whole multiple of "
                f"bucket_seconds ({bucket_seconds!r})"
            )
        self.window_seconds = window
        self.bucket_seconds = bucket
        self.size = size
        self.reset()

    def reset(self) -> None:
        """Forget every sample."""
        self.total = 0
        self.panics = 0
        self._counts = [0] * self.size
        self._panic_counts = [0] * self.size
        self._head = -1  # index of the newest bucket, -1 before the first sample
        self._slot = 0  # where that bucket sits in the ring
        self._edge = -math.inf  # clock time at which the newest bucket ends

    def add(self, now: float, panic: bool) -> None:
        """Count one sample at clock time *now*."""
        if now >= self._edge:
            self.advance(now)
        slot = self._slot
        self._counts[slot] += 1
        self.total += 1
        if panic:
            self._panic_counts[slot] += 1
            self.panics += 1

    @property
    def ratio(self) -> float:
        """Panic samples / all samples; 0.0 for an empty window."""
        return self.panics / self.total if self.total else 0.0

    @property
    def newest(self) -> int:
        """The newest bucket's index (its clock time // ``bucket_seconds``); -1 before any sample."""
        return self._head

    def bucket(self, index: int) -> tuple[int, int]:
        """The samples and panics of bucket *index*; (0, 0) if it is not in the window."""
        head = self._head
        if head < 0 or not head - self.size < index <= head:
            return 0, 0
        slot = index % self.size
        return self._counts[slot], self._panic_counts[slot]

    def buckets(self) -> list[tuple[int, int, int]]:
        """The buckets holding samples, oldest first: (index, samples, panics)."""
        head, size = self._head, self.size
        counts, panic_counts = self._counts, self._panic_counts
        return [
            (index, counts[index % size], panic_counts[index % size])
            for index in range(head - size + 1, head + 1)
            if head >= 0 and counts[index % size]
        ]

    @property
    def lock(self) -> None:
        """None: a window of one process has no background work; its breaker's lock guards it."""
        return None

    def metrics(self) -> dict[str, Any]:
        """Nothing beyond the totals the breaker reports."""
        return {}

    def advance(self, now: float) -> None:
        """Drop the samples that are older than the window at clock time *now*.

        A clock that steps back (a wall clock under NTP) moves nothing: its
        samples count into the newest bucket.
        """
        if now < self._edge:
            return
        index = int(now // self.bucket_seconds)
        head, size = self._head, self.size
        if head < 0 or index - head >= size:
            # Everything is older than the window: one reset, not a sweep.
            self.reset()
        else:
            counts, panic_counts = self._counts, self._panic_counts
            for evicted in range(head + 1, index + 1):
                slot = evicted % size
                self.total -= counts[slot]
                self.panics -= panic_counts[slot]
                counts[slot] = 0
                panic_counts[slot] = 0
        self._head = index
        self._slot = index % size
        self._edge = (index + 1) * self.bucket_seconds
