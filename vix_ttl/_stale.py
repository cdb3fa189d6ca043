"""Serving past freshness, on purpose: stale-while-revalidate, stale-if-error, early refresh.

An entry is fresh while ``fresh()`` says so (``vix_ttl._engine``). Past that, an
``Allowance`` of seconds (per breaker mode) says for how much longer it may still
be served: while one refresh runs in the background (``stale_while_revalidate``),
or instead of the computation's exception (``stale_if_error``). Early refresh
(XFetch: Vattani, Chierichetti, Lowenstein, VLDB 2015) starts a refresh before an
entry expires, with a probability that rises as its freshness runs out.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from vix_ttl._checks import check_seconds
from vix_ttl.mode import Mode

__all__ = ["NO_ALLOWANCE", "Allowance", "Expired", "early_refresh_due"]


@dataclass(frozen=True, slots=True)
class Allowance:
    """Seconds an entry may be served past its fresh TTL, per breaker mode."""

    normal: float = 0.0
    high_volatility: float = 0.0
    circuit_open: float = 0.0

    @classmethod
    def of(cls, name: str, value: float | Mapping[Mode | str, float]) -> Allowance:
        """From seconds (every mode) or a mapping mode -> seconds (missing modes: 0).

        Raises:
            TypeError, ValueError: naming *name*, the mode and what is allowed.
        """
        if isinstance(value, Mapping):
            seconds = {}
            for mode, allowed in value.items():
                try:
                    member = Mode.coerce(mode)
                except (ValueError, AttributeError):
                    valid = ", ".join(m.value for m in Mode)
                    raise ValueError(f"{name}: unknown mode {mode!r}, expected one of {valid}") from None
                seconds[member.value] = check_seconds(f"{name}[{member.value!r}]", allowed)
            return cls(**seconds)
        every = check_seconds(name, value)
        return cls(every, every, every)

    def __getitem__(self, mode: Mode) -> float:
        seconds: float = getattr(self, mode.value)
        return seconds

    @property
    def largest(self) -> float:
        """The longest allowance of any mode: how long a shared store must keep an entry past its TTL."""
        return max(self.normal, self.high_volatility, self.circuit_open)

    def __bool__(self) -> bool:
        return self.largest > 0


NO_ALLOWANCE = Allowance()
"""Nothing is served past its fresh TTL."""


class Expired(NamedTuple):
    """An entry found past its fresh TTL (or a hit due an early refresh): served only within an
    allowance. (``CacheInfo.stale`` counts the calls that found one and recomputed.)"""

    value: Any
    stored_at: float
    fresh_for: float
    """Its fresh TTL: ``min(stored, decided)``."""

    def within(self, allowance: Allowance, mode: Mode, now: float) -> bool:
        """Whether it may still be served *now*: its age, then, below fresh + the allowance of *mode*.

        Judged when it is served, not when it was read: a computation that ran (and
        failed) meanwhile made it older.
        """
        return 0 <= now - self.stored_at < self.fresh_for + allowance[mode]


def early_refresh_due(left: float, delta: float, beta: float, draw: float | None = None) -> bool:
    """XFetch: refresh now with probability ``exp(-left / (delta * beta))``, *left* seconds before expiry.

    *delta* is how long the entry took to compute. The longer a computation and
    the closer the expiry, the likelier an early refresh, so that one caller
    recomputes before the others find the entry expired.
    """
    scale = delta * beta
    if not scale > 0:  # no measured delta, early refresh off, or a product too small to divide by
        return False
    return (random.random() if draw is None else draw) < math.exp(-left / scale)
