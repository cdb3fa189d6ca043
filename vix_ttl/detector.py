"""The volatility detector: a status for each new observation of a series.

Each series (a match, a market) keeps an exponentially weighted estimate of
its past moves; a new observation's move is scored against it as a z-score,
``|z| >= panic_sigma`` is PANIC and ``|z| >= warning_sigma`` WARNING. O(1)
time and memory per series and update.

The estimate is bias-corrected while it warms up. An exponentially weighted
variance that starts at 0 under-estimates the spread until the weights of its
first moves have decayed (a few half-lives): with ``halflife=1000``, three in
four calm moves scored as panic. So the weights are kept as sums (their total
and the total of their squares), the variance is the unbiased one for
reliability weights, and a new move is scored against the spread of a *new*
observation, which includes the uncertainty of the estimated mean. On
stationary Gaussian moves the shares at each level then match the normal
tails (4.55 % at 2 sigma) from ``min_history`` on, whatever the half-life.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal

from vix_ttl._checks import as_float
from vix_ttl.status import VixStatus

__all__ = ["VolatilityDetector"]

_NORMAL, _WARNING, _PANIC = VixStatus.NORMAL, VixStatus.WARNING, VixStatus.PANIC
_CLIP_SIGMA = 3.0
"""A scored move farther out than this (or than panic_sigma) is learned as if it were that far."""


@dataclass(slots=True)
class _Series:
    last: float
    moves: int = 0
    weight: float = 0.0
    """The moves' weights summed (the newest weighs 1, each older one (1 - alpha) times less)."""
    weight_sq: float = 0.0
    """Their squares summed: how many moves the estimate is really worth is weight² / weight_sq."""
    mean: float = 0.0
    deviations: float = 0.0
    """The weighted sum of squared deviations from the mean."""
    status: VixStatus = _NORMAL


class VolatilityDetector:
    """Classifies each new observation of a series as normal, warning or panic.

    Args:
        warning_sigma: ``|z|`` at which a move is WARNING.
        panic_sigma: ``|z|`` at which a move is PANIC (>= *warning_sigma*).
        halflife: Observations after which a past move weighs half as much.
        min_history: Moves a series needs before it can leave NORMAL.
        transform: ``"log"`` scores log-returns (values must be > 0),
            ``"diff"`` plain differences.

    Raises:
        ValueError: A parameter is out of range (the message names it).
    """

    def __init__(
        self,
        *,
        warning_sigma: float = 1.5,
        panic_sigma: float = 2.0,
        halflife: float = 100,
        min_history: int = 20,
        transform: Literal["log", "diff"] = "log",
    ) -> None:
        for name, value in (
            ("warning_sigma", warning_sigma),
            ("panic_sigma", panic_sigma),
            ("halflife", halflife),
        ):
            number = as_float(f"VolatilityDetector: {name}", value, "a finite number > 0")
            if not (math.isfinite(number) and number > 0):
                raise ValueError(f"VolatilityDetector: {name} must be a finite number > 0, got {value!r}")
        if warning_sigma > panic_sigma:
            raise ValueError(
                f"VolatilityDetector: warning_sigma ({warning_sigma!r}) must not exceed "
                f"panic_sigma ({panic_sigma!r})"
            )
        if isinstance(min_history, bool) or not isinstance(min_history, int) or min_history < 0:
            raise ValueError(f"VolatilityDetector: min_history must be an int >= 0, got {min_history!r}")
        if transform not in ("log", "diff"):
            raise ValueError(f"VolatilityDetector: transform must be 'log' or 'diff', got {transform!r}")
        self.warning_sigma = float(warning_sigma)
        self.panic_sigma = float(panic_sigma)
        self.halflife = float(halflife)
        self.min_history = min_history
        self.transform = transform
        self._decay = 0.5 ** (1 / self.halflife)  # how much a move's weight keeps at each new move
        self._clip = max(_CLIP_SIGMA, self.panic_sigma)
        self._series: dict[Hashable, _Series] = {}
        self._lock = threading.Lock()

    def update(self, series: Hashable, value: float) -> VixStatus:
        """Score *value*'s move from the series' previous value; return its status."""
        value = self._checked(value)
        with self._lock:
            state = self._series.get(series)
            if state is None:
                self._series[series] = _Series(value)
                return _NORMAL
            move = math.log(value / state.last) if self.transform == "log" else value - state.last
            state.last = value
            if state.moves >= self.min_history:
                status, move = self._classify(state, move)
            else:
                status = _NORMAL
            self._learn(state, move)
            state.status = status
            return status

    def status(self, series: Hashable) -> VixStatus:
        """The status of the series' latest observation (NORMAL for a series never seen)."""
        state = self._series.get(series)
        return _NORMAL if state is None else state.status

    def forget(self, series: Hashable) -> None:
        """Drop a series' history (a match that has ended)."""
        with self._lock:
            self._series.pop(series, None)

    def _classify(self, state: _Series, move: float) -> tuple[VixStatus, float]:
        """The status of *move*, and the move to learn from: an outlier clipped to the bound."""
        deviation = abs(move - state.mean)
        weight, weight_sq = state.weight, state.weight_sq
        effective = weight - weight_sq / weight if weight else 0.0
        spread = 0.0
        if effective:
            # The unbiased variance for reliability weights, widened by the error of the
            # estimated mean: the spread a new move is expected to have.
            spread = math.sqrt(max(state.deviations, 0.0) / effective * (1 + weight_sq / weight**2))
        # Out of a flat history (no spread, or a single move), any move at all is a jump.
        z = deviation / spread if spread else (math.inf if deviation else 0.0)
        if z > self._clip and spread:
            move = state.mean + math.copysign(self._clip * spread, move - state.mean)
        if z >= self.panic_sigma:
            return _PANIC, move
        return (_WARNING if z >= self.warning_sigma else _NORMAL), move

    def _learn(self, state: _Series, move: float) -> None:
        # West (1979)'s incremental weighted mean and variance, every older weight
        # decayed at each move: the first move is the mean, with no spread yet.
        decay = self._decay
        state.weight = decay * state.weight + 1
        state.weight_sq = decay * decay * state.weight_sq + 1
        delta = move - state.mean
        state.mean += delta / state.weight
        state.deviations = decay * state.deviations + delta * (move - state.mean)
        state.moves += 1

    def _checked(self, value: float) -> float:
        number = as_float("VolatilityDetector.update: value", value, "a finite number")
        if not math.isfinite(number):
            raise ValueError(f"VolatilityDetector.update: value must be a finite number, got {value!r}")
        if self.transform == "log" and value <= 0:
            raise ValueError(
                f"VolatilityDetector.update: value must be > 0 with transform='log', got {value!r} "
                f"(use transform='diff' for series that can reach 0)"
            )
        return number
