"""How fast the data changes, learned from recomputations: the estimator behind ``Learned`` TTLs.

A recomputation of a key that had an entry tells one thing: whether the value
changed in the *interval* since the entry was computed, not when nor how many
times. That is censored data, and the estimator of Cho and Garcia-Molina
("Estimating frequency of change", ACM TOIT 2003) is built for it: with *n*
observed intervals of mean length *I* and *x* of them changed,

    rate = -ln((n - x + 0.5) / (n + 0.5)) / I

which stays finite when every interval saw a change (a naive ``x / (n * I)``
undercounts then: several changes in one interval look like one).

Observations are pooled by status across every key of a breaker: a key is
recomputed only once per TTL, so one key alone learns too slowly to follow a
panic, while the status is what predicts how fast a feed moves. Old
observations fade with a half-life counted in observations, so a rate learned
in one panic does not outlive the evidence of the next.
"""

from __future__ import annotations

import math

from vix_ttl._checks import check_count
from vix_ttl.status import VixStatus

__all__ = ["ChangeRate"]


class ChangeRate:
    """Per status, the mean interval between two changes of the data, from (interval, changed) pairs.

    Not thread-safe on its own: the breaker calls it under its lock.

    Args:
        halflife: Observations after which one weighs half as much.
    """

    __slots__ = ("_decay", "_sums")

    def __init__(self, halflife: int = 200) -> None:
        check_count("halflife", halflife, minimum=1)
        self._decay = 0.5 ** (1 / halflife)
        # Per status: [observations, of which changed, seconds observed], each decayed.
        self._sums: dict[VixStatus, list[float]] = {status: [0.0, 0.0, 0.0] for status in VixStatus}

    def observe(self, status: VixStatus, interval: float, changed: bool) -> float:
        """Add one recomputation under *status*; return the new mean interval for it."""
        sums, decay = self._sums[status], self._decay
        sums[0] = sums[0] * decay + 1
        sums[1] = sums[1] * decay + changed
        sums[2] = sums[2] * decay + interval
        return self.interval(status)

    def interval(self, status: VixStatus) -> float:
        """The estimated mean seconds between two changes under *status* (``inf``: none seen yet)."""
        n, changed, seconds = self._sums[status]
        if not changed:
            return math.inf
        mean = seconds / n
        if not mean > 0:  # changes seen over intervals too short to measure: as fast as can be
            return 0.0
        return mean / -math.log((n - changed + 0.5) / (n + 0.5))

    def __repr__(self) -> str:
        shown = ", ".join(f"{s.value}={self.interval(s):.3g} s" for s in VixStatus)
        return f"<ChangeRate {shown}>"
