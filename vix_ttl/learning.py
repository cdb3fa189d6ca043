"""How fast the data changes and how often each key is asked for: the estimators behind ``Learned`` TTLs.

A recomputation of a key that had an entry tells one thing: whether the value
changed in the *interval* since the entry was computed, not when nor how many
times. That is censored data, and its intervals differ (each key has a TTL of its
own). The maximum-likelihood rate for it (Cho and Garcia-Molina, "Estimating
frequency of change", ACM TOIT 2003, for irregular intervals) solves

    sum over changed intervals of I / (exp(rate * I) - 1) = sum of unchanged intervals

which ``ChangeRate`` reaches online, as an expectation-maximisation: an unchanged
interval counts its length as time watched without a change, a changed one the time
its first change is expected to have taken at the rate estimated so far
(``1 / rate - I / (exp(rate * I) - 1)``, half the interval when nothing is known);
the rate is the changes over that time. It stays finite when every interval saw a
change (each then counts about ``1 / rate``), where a naive ``changes / seconds``
undercounts (several changes in one interval look like one).

Observations are pooled by status across every key of a breaker: a key is
recomputed only once per TTL, so one key alone learns too slowly to follow a
panic, while the status is what predicts how fast a feed moves. Old
observations fade with a half-life counted in observations, so a rate learned
in one panic does not outlive the evidence of the next.

Per key (``KeyRates``), two things more, both learned at recomputations only, never on
a hit:

- how often the key is called. The time from an entry's expiry to the next call of its
  key is, for calls arriving at random, an exponential draw of the key's request rate
  (the next arrival after a moment fixed in advance), and the calls that join a
  computation while it runs are the arrivals of its duration: arrivals over the time
  watched is the rate (the maximum-likelihood estimate of a Poisson rate; calls at
  regular intervals read as up to twice as frequent). A gap longer than the entry's own
  TTL is cut there (censored): a gap that long says the key is cold on that scale, or
  that a shorter decision cut the entry short.
- how fast its value moves against its status's pooled rate: the changes it showed over
  the changes its status's rate predicts for the same intervals (an observed-to-expected
  ratio, shrunk toward 1 by a prior of a few observations: a key seen a few times moves as
  its status does). That evidence fades with time, an hour's half-life, not with
  recomputations: a key that never changes is kept short at first, and gathers less
  evidence a recomputation the shorter it is kept.

The table is bounded: at most *size* keys, by hash (it holds no key of the caller's),
in arrays allocated once; a full table forgets a key by the CLOCK rule (a hand sweeps
the slots and takes the first not observed since its last pass).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Hashable

from vix_ttl._checks import as_float, check_count, check_seconds
from vix_ttl.status import VixStatus

__all__ = ["KEYS", "LONGEST", "MAX_KEYS", "MOST_CALLS", "UNCHANGED_MEANS", "ChangeRate", "KeyRates"]

KEYS = 4096
"""How many keys a breaker's ``KeyRates`` learns about at most, unless told."""
LONGEST = 86_400.0
"""The most seconds one observation counts for, a day: longer says no more, and sums stay finite."""
MOST_CALLS = 1e9
"""The most calls one observation counts for."""
UNCHANGED_MEANS = 4.0
"""The most mean intervals between changes one unchanged interval counts for."""
MAX_KEYS = 1 << 22
"""The most keys a ``KeyRates`` may be sized for (about 0.75 GB)."""


def first_change(interval: float, rate: float) -> float:
    """The expected time to the first change in *interval*, given one came, at *rate* changes a second."""
    x = rate * interval
    if x < 1e-4:  # the series: 1/rate - I/expm1(rate I) cancels catastrophically here
        return interval / 2 - rate * interval * interval / 12
    if x > 700:  # exp would overflow: the first change came at once
        return 1 / rate
    return 1 / rate - interval / math.expm1(x)


class ChangeRate:
    """Per status, the rate of change of the data, from (interval, changed) pairs.

    Not thread-safe on its own: the breaker calls it under its lock.

    Args:
        halflife: Observations after which one weighs half as much.
    """

    __slots__ = ("_decay", "_sums")

    def __init__(self, halflife: int = 200) -> None:
        check_count("halflife", halflife, minimum=1)
        self._decay = 0.5 ** (1 / halflife)
        # Per status: [changes seen, seconds watched until them or without one], each decayed.
        self._sums: dict[VixStatus, list[float]] = {status: [0.0, 0.0] for status in VixStatus}

    def observe(self, status: VixStatus, interval: float, changed: bool) -> float:
        """Add one recomputation under *status*; return the new mean interval for it.

        An unchanged interval counts at most ``UNCHANGED_MEANS`` mean intervals: one key
        left alone for a day says that key is still, not that its status is (its hours
        would outweigh every other key's evidence), and none more than ``LONGEST``.
        """
        sums, decay = self._sums[status], self._decay
        changes, watched = sums
        rate = changes / watched if watched > 0 else (math.inf if changes else 0.0)
        interval = min(interval, LONGEST)
        if changed:
            watched_now = 0.0 if rate == math.inf else first_change(interval, rate)
        else:
            watched_now = min(interval, UNCHANGED_MEANS / rate) if rate else interval
        sums[0] = changes * decay + changed
        sums[1] = watched * decay + watched_now
        return self.interval(status)

    def rate(self, status: VixStatus) -> float:
        """The estimated changes per second under *status* (0: none seen yet; ``inf``: too fast to tell)."""
        changes, watched = self._sums[status]
        if not changes:
            return 0.0
        return changes / watched if watched > 0 else math.inf

    def interval(self, status: VixStatus) -> float:
        """The estimated mean seconds between two changes under *status* (``inf``: none seen yet)."""
        changes, watched = self._sums[status]
        return watched / changes if changes else math.inf

    def __repr__(self) -> str:
        shown = ", ".join(f"{s.value}={self.interval(s):.3g} s" for s in VixStatus)
        return f"<ChangeRate {shown}>"


class KeyRates:
    """Per key: its calls per second, and how fast its value moves relative to its status's rate.

    Each observation is one recomputation of a key. Its calls fade with a half-life
    counted in the key's own observations (a key's traffic shifts fast); its changes with
    a half-life in seconds (how a key moves against its status is a slow trait of the
    key: counted in recomputations, a key kept short gathers too little evidence to ever
    be kept long). At most *size* keys are kept: a slot of four floats, a hash and a bit
    in arrays allocated when built, and an entry of the index from hash to slot (about
    180 bytes a key in all: 0.75 MB for 4,096, 0.18 MB of it allocated up front); a full
    table forgets the key its CLOCK hand finds first unobserved since the hand's last
    pass. Not thread-safe on its own: the breaker calls it under its lock.

    Args:
        size: The most keys kept (at most ``MAX_KEYS``).
        halflife: A key's observations after which its calls seen weigh half as much.
        change_halflife: Seconds after which a key's changes seen weigh half as much.
        prior: Pseudo-observations of a key moving exactly as its status does: how
            much evidence of its own a key needs before its rate counts.
    """

    __slots__ = (
        "_change_halflife",
        "_decay",
        "_hand",
        "_hashes",
        "_index",
        "_prior",
        "_seen",
        "_size",
        "_sums",
    )

    def __init__(
        self, size: int = KEYS, halflife: int = 8, change_halflife: float = 3600.0, prior: float = 1.0
    ) -> None:
        self._size = check_count("size", size, minimum=1)
        if size > MAX_KEYS:
            raise ValueError(f"size must be at most {MAX_KEYS:,} keys, got {size!r}")
        check_count("halflife", halflife, minimum=1)
        self._change_halflife = check_seconds("change_halflife", change_halflife, positive=True)
        if not as_float("prior", prior, "a number >= 0") >= 0 or not math.isfinite(prior):
            raise ValueError(f"prior must be a finite number >= 0, got {prior!r}")
        self._decay = 0.5 ** (1 / halflife)
        self._prior = float(prior)
        self._index: dict[int, int] = {}  # key hash -> slot
        self._hashes = array("q", bytes(8 * size))  # slot -> key hash
        self._seen = bytearray(size)  # slot -> observed since the hand last passed
        # Per slot, four decayed sums: arrivals, seconds watched, changes seen, changes expected.
        self._sums = array("d", bytes(32 * size))
        self._hand = 0

    def observe(
        self,
        key: Hashable,
        arrivals: float,
        watched: float,
        *,
        changed: float = 0.0,
        expected: float = 0.0,
        interval: float = 0.0,
    ) -> tuple[float, float]:
        """One recomputation of *key*: *arrivals* calls seen over *watched* seconds, and
        *changed* (0 or 1) against the chance of a change, *expected*, its status's rate
        gave the *interval* seconds since its previous computation. Each counts at most
        ``MOST_CALLS`` calls, ``LONGEST`` seconds, one change.

        Returns its request rate (calls per second: 0 when none seen, ``inf`` when calls
        came over no measurable time) and its relative change rate (1: as its status).
        """
        code = hash(key)
        seen = array("d", (arrivals, watched, changed, expected, interval))  # all checked before any is kept
        if not all(0 <= number < math.inf for number in seen):
            raise ValueError(
                f"KeyRates.observe takes finite numbers >= 0, got arrivals={arrivals!r}, "
                f"watched={watched!r}, changed={changed!r}, expected={expected!r}, interval={interval!r}"
            )
        arrivals, changed, expected = min(arrivals, MOST_CALLS), min(changed, 1.0), min(expected, 1.0)
        watched, interval = min(watched, LONGEST), min(interval, LONGEST)
        slot = self._index.get(code)
        sums = self._sums
        if slot is None:
            first = array("d", (arrivals, watched, changed, expected))  # before a victim is forgotten
            slot = self._free()
            at = 4 * slot
            sums[at : at + 4] = first
            self._hashes[slot] = code
            self._index[code] = slot
        else:
            at = 4 * slot
            decay, fade = self._decay, 0.5 ** (interval / self._change_halflife)
            sums[at] = sums[at] * decay + arrivals
            sums[at + 1] = sums[at + 1] * decay + watched
            sums[at + 2] = sums[at + 2] * fade + changed
            sums[at + 3] = sums[at + 3] * fade + expected
        self._seen[slot] = 1
        return self._rates(at)

    def rates(self, key: Hashable) -> tuple[float, float]:
        """The request rate and relative change rate learned for *key* (``(0.0, 1.0)``: never
        seen, or forgotten)."""
        slot = self._index.get(hash(key))
        return (0.0, 1.0) if slot is None else self._rates(4 * slot)

    def __len__(self) -> int:
        return len(self._index)

    def _free(self) -> int:
        """A slot for a new key: an unused one, or the CLOCK hand's victim's."""
        index = self._index
        if len(index) < self._size:
            return len(index)  # slots fill in order and are never given back
        seen, hand, size = self._seen, self._hand, self._size
        while seen[hand]:  # a second chance for every slot observed since the last pass
            seen[hand] = 0
            hand = (hand + 1) % size
        del index[self._hashes[hand]]
        self._hand = (hand + 1) % size
        return hand

    def _rates(self, at: int) -> tuple[float, float]:
        sums = self._sums
        arrivals, watched, changed, expected = sums[at], sums[at + 1], sums[at + 2], sums[at + 3]
        if not arrivals:
            requests = 0.0
        elif watched > 0:
            requests = arrivals / watched
        else:
            requests = math.inf
        prior = self._prior
        relative = (changed + prior) / (expected + prior) if expected + prior > 0 else 1.0
        return requests, relative

    def __repr__(self) -> str:
        return f"<KeyRates {len(self._index)} of {self._size} keys>"
