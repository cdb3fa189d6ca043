"""The breaker's three modes and the hysteresis state machine that moves between them.

The machine sees only a panic ratio, a sample count and a clock time; it knows
nothing of buckets or windows, so it is tested alone with plain numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from vix_ttl._enum import ValueEnum

__all__ = ["Mode", "ModeMachine", "Thresholds", "Transition"]


class Mode(ValueEnum):
    """What the breaker does with the cache, from calm to sustained panic."""

    NORMAL = "normal"
    HIGH_VOLATILITY = "high_volatility"
    CIRCUIT_OPEN = "circuit_open"


_LEVELS: tuple[Mode, ...] = (Mode.NORMAL, Mode.HIGH_VOLATILITY, Mode.CIRCUIT_OPEN)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Panic ratios at which the breaker steps up (enter, ``>=``) and down (exit, ``<``).

    Raises:
        TypeError: A value is not a number.
        ValueError: A value is outside [0, 1], an exit is not strictly below
            its enter, ``exit_high_volatility > exit_circuit_open`` or
            ``enter_high_volatility > enter_circuit_open``.
    """

    enter_high_volatility: float = 0.50
    exit_high_volatility: float = 0.30
    enter_circuit_open: float = 0.80
    exit_circuit_open: float = 0.60

    def __post_init__(self) -> None:
        for name in (
            "enter_high_volatility",
            "exit_high_volatility",
            "enter_circuit_open",
            "exit_circuit_open",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"Thresholds.{name} must be a number in [0, 1], got {value!r}")
            if not 0 <= value <= 1:  # NaN fails this too
                raise ValueError(f"Thresholds.{name} must be a number in [0, 1], got {value!r}")
        for mode in ("high_volatility", "circuit_open"):
            enter, exit_ = getattr(self, f"enter_{mode}"), getattr(self, f"exit_{mode}")
            if not exit_ < enter:
                raise ValueError(
                    f"Thresholds.exit_{mode} ({exit_!r}) must be strictly below "
                    f"enter_{mode} ({enter!r}), or the mode would flap"
                )
        if self.exit_high_volatility > self.exit_circuit_open:
            raise ValueError(
                f"Thresholds.exit_high_volatility ({self.exit_high_volatility!r}) must not "
                f"exceed exit_circuit_open ({self.exit_circuit_open!r})"
            )
        if self.enter_high_volatility > self.enter_circuit_open:
            raise ValueError(
                f"Thresholds.enter_high_volatility ({self.enter_high_volatility!r}) must not "
                f"exceed enter_circuit_open ({self.enter_circuit_open!r})"
            )


Trigger = Literal["sustained_panic", "recovery"]


@dataclass(frozen=True, slots=True)
class Transition:
    """One hop between two adjacent modes, as published to listeners."""

    old: Mode
    new: Mode
    panic_ratio: float
    at: float
    trigger: Trigger


class ModeMachine:
    """The hysteresis state machine over the panic ratio.

    A mode is entered when the ratio is ``>=`` its enter threshold and left
    when it is ``<`` its exit threshold. Stepping up needs at least
    *min_samples* samples; stepping down follows the ratio alone, after the
    lower mode's condition has held for *stabilization_seconds*.

    While ``low <= ratio < high`` and nothing is ``pending``, ``update`` has
    nothing to do: callers on a hot path test that band before calling it.
    """

    __slots__ = (
        "_below_since",
        "_enter",
        "_exit",
        "_level",
        "high",
        "low",
        "min_samples",
        "mode",
        "pending",
        "stabilization_seconds",
    )

    def __init__(self, thresholds: Thresholds, min_samples: int, stabilization_seconds: float) -> None:
        self.min_samples = min_samples
        self.stabilization_seconds = stabilization_seconds
        # Indexed by level: the ratio that enters the next level up, and the
        # ratio below which this level is left.
        self._enter = (thresholds.enter_high_volatility, thresholds.enter_circuit_open, math.inf)
        self._exit = (-math.inf, thresholds.exit_high_volatility, thresholds.exit_circuit_open)
        self.reset()

    def reset(self) -> None:
        """Back to NORMAL with no pending step down."""
        self._level = 0
        self.mode = Mode.NORMAL
        self.high, self.low = self._enter[0], self._exit[0]
        # When the ratio first went below each level's exit threshold, while a
        # stabilization period runs; all None when nothing is pending.
        self._below_since: list[float | None] = [None, None, None]
        self.pending = False  # a step down waits on stabilization_seconds

    def update(self, ratio: float, samples: int, now: float) -> list[Transition] | None:
        """Settle the mode for *ratio* at clock time *now*; return the hops, if any."""
        if self.low <= ratio < self.high and not self.pending:
            return None
        hops: list[Transition] = []
        level = self._level
        self._track_below(ratio, now)
        while True:
            if level < 2 and ratio >= self._enter[level] and samples >= self.min_samples:
                hops.append(Transition(_LEVELS[level], _LEVELS[level + 1], ratio, now, "sustained_panic"))
                level += 1
            elif level > 0 and self._stable_below(level, now):
                hops.append(Transition(_LEVELS[level], _LEVELS[level - 1], ratio, now, "recovery"))
                level -= 1
            else:
                break
        self._level = level
        self.pending = self._below_since[level] is not None
        self.mode = _LEVELS[level]
        self.high, self.low = self._enter[level], self._exit[level]
        return hops or None

    def _track_below(self, ratio: float, now: float) -> None:
        below = self._below_since
        for level in (1, 2):
            if ratio >= self._exit[level] or level > self._level:
                below[level] = None
            elif below[level] is None:
                below[level] = now

    def _stable_below(self, level: int, now: float) -> bool:
        since = self._below_since[level]
        if since is None or now - since < self.stabilization_seconds:
            return False
        self._below_since[level] = None
        return True
