"""The simulator's truth: when each key's true value changes, so a served value can be judged.

Each key's true value changes as a Poisson process whose rate follows the
status in force: a change every ``change_every[status]`` seconds on average
(the defaults: normal 300 s, warning 30 s, panic 2 s). The process is
drawn by time rescaling: the cumulative hazard ``H(t)`` (the integral of
``1 / change_every[status(t)]``) is piecewise linear over the status timeline,
and a key's changes sit where ``H`` crosses the partial sums of unit
exponential draws. A replayed scenario with observed values brings its own
truth instead: every key changes at each new value.

Every key draws from a generator of its own, seeded by the scenario's seed and
the key, so a strategy's traffic cannot shift another key's changes, and every
strategy of a run is judged against the same truth.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence

from vix_ttl.sim.scenario import Scenario

__all__ = ["Truth"]


class Truth:
    """When each key's true value changes during *scenario* (times in seconds from its start)."""

    def __init__(self, scenario: Scenario) -> None:
        self._scenario = scenario
        self._shared: tuple[float, ...] | None = scenario.truth_changes
        self._changes: dict[int, list[float]] = {}
        # The cumulative hazard at the start of each status segment, and its slope there.
        ends = [t for t, _ in scenario.changes[1:]] + [scenario.duration]
        self._starts: list[float] = []
        self._hazards: list[float] = []
        self._rates: list[float] = []
        hazard = 0.0
        for (start, status), end in zip(scenario.changes, ends, strict=True):
            rate = 1 / scenario.change_every[status]
            self._starts.append(start)
            self._hazards.append(hazard)
            self._rates.append(rate)
            hazard += rate * max(0.0, end - start)
        self._total = hazard

    def changes(self, key: int) -> Sequence[float]:
        """The times *key*'s true value changes, in order."""
        if self._shared is not None:
            return self._shared
        times = self._changes.get(key)
        if times is None:
            times = self._changes[key] = self._draw(key)
        return times

    def version(self, key: int, t: float) -> tuple[int, float]:
        """How many times *key*'s true value changed in ``(0, t]`` (equal versions, equal values),
        and when it changes next (``inf``: not before the end)."""
        changes = self.changes(key)
        version = bisect.bisect_right(changes, t)
        return version, changes[version] if version < len(changes) else math.inf

    def _draw(self, key: int) -> list[float]:
        rng = random.Random(f"truth:{self._scenario.seed}:{key}")  # a str seed: stable across runs
        times, hazard, segment = [], rng.expovariate(1.0), 0
        while hazard < self._total:
            while segment + 1 < len(self._hazards) and self._hazards[segment + 1] <= hazard:
                segment += 1
            times.append(self._starts[segment] + (hazard - self._hazards[segment]) / self._rates[segment])
            hazard += rng.expovariate(1.0)
        return times
