"""Scenarios for the simulator: the traffic, the status timeline and the run's settings.

A ``Scenario`` is built in (``lineup_leak``, the production story) or replayed
from a file of timestamped statuses or observed values (``load_scenario``).
"""

from __future__ import annotations

import bisect
import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vix_ttl.detector import VolatilityDetector
from vix_ttl.mode import Thresholds
from vix_ttl.status import VixStatus

__all__ = ["Scenario", "lineup_leak", "load_scenario"]


@dataclass(frozen=True)
class Scenario:
    """The traffic and the settings of one simulation.

    ``changes`` is the status timeline: ``(time, status)`` points, each status
    holding until the next point; the run ends at ``duration``.
    """

    name: str
    changes: tuple[tuple[float, str], ...]
    duration: float
    rate: float = 1000.0
    hot_share: float = 0.95
    keys: int = 50
    latency: float = 0.05
    ttl: float = 60.0
    window_seconds: float = 1800.0
    bucket_seconds: float = 1.0
    min_samples: int = 20
    thresholds: Thresholds = field(default_factory=Thresholds)
    seed: int = 1
    step: float = 1 / 32
    processes: int = 1
    """Worker processes of the fleet, each with its own in-flight sharing, over one shared store."""

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("duration", self.duration > 0, "> 0"),
            ("rate", self.rate > 0, "> 0"),
            ("hot_share", 0 <= self.hot_share <= 1, "in [0, 1]"),
            ("keys", self.keys >= 1, ">= 1"),
            ("latency", self.latency >= 0, ">= 0"),
            ("ttl", self.ttl > 0, "> 0"),
            ("step", 0 < self.step <= 1, "in (0, 1] seconds"),
            ("min_samples", self.min_samples >= 0, ">= 0"),
            ("processes", isinstance(self.processes, int) and self.processes >= 1, ">= 1 (a whole number)"),
        ]
        for name, ok, allowed in checks:
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not ok
            ):
                raise ValueError(f"scenario {name} must be a finite number {allowed}, got {value!r}")
        if not self.changes or self.changes[0][0] > 0:
            raise ValueError("scenario changes must start at time 0")
        for _, status in self.changes:
            VixStatus.coerce(status)

    @property
    def latency_steps(self) -> int:
        """The backend latency in whole steps, rounded up (never shorter than asked)."""
        return math.ceil(self.latency / self.step - 1e-9) if self.latency else 0

    def status_at(self, t: float) -> str:
        """The timeline's status at time *t*."""
        index = bisect.bisect_right(self.changes, (t, "~")) - 1  # "~" sorts after every status
        return self.changes[index][1]

    @property
    def panic_seconds(self) -> float:
        """How long the timeline says panic."""
        ends = [t for t, _ in self.changes[1:]] + [self.duration]
        return sum(end - t for (t, s), end in zip(self.changes, ends, strict=True) if s == "panic")


def lineup_leak(
    *, calm_minutes: float = 30, panic_minutes: float = 45, after_minutes: float = 30, **settings: Any
) -> Scenario:
    """The built-in scenario: calm, a lineup leak (panic on every request), calm again."""
    calm, panic = calm_minutes * 60, panic_minutes * 60
    return Scenario(
        name="lineup-leak",
        changes=((0.0, "normal"), (calm, "panic"), (calm + panic, "normal")),
        duration=calm + panic + after_minutes * 60,
        **settings,
    )


def load_scenario(path: Path, **settings: Any) -> Scenario:
    """A scenario replayed from a file of timestamped statuses or observed values.

    CSV with a header, or JSON (a list of objects), with ``t`` (seconds from
    the start) and either ``status`` or ``value`` (plus an optional ``series``,
    default one series): observed values go through a ``VolatilityDetector``.
    The run ends one second after the last row.

    Raises:
        ValueError: The file cannot be read as such rows; the message says why.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read scenario {str(path)!r}: {exc.strerror}") from None
    try:
        rows = json.loads(text) if path.suffix.lower() == ".json" else list(csv.DictReader(text.splitlines()))
    except json.JSONDecodeError as exc:
        raise ValueError(f"scenario {path.name}: not valid JSON ({exc})") from None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise ValueError(
            f"scenario {path.name}: expected a non-empty list of rows with 't' and 'status' or 'value'"
        )
    detector = VolatilityDetector()
    changes: list[tuple[float, str]] = []
    for number, row in enumerate(sorted(rows, key=lambda r: _number(r, "t", path)), start=1):
        t = _number(row, "t", path)
        if "status" in row and row["status"] not in (None, ""):
            try:
                status = VixStatus.coerce(str(row["status"]))
            except ValueError as exc:
                raise ValueError(f"scenario {path.name}, row {number}: {exc}") from None
        elif "value" in row:
            try:
                status = detector.update(row.get("series") or "default", _number(row, "value", path))
            except ValueError as exc:
                raise ValueError(f"scenario {path.name}, row {number}: {exc}") from None
        else:
            raise ValueError(f"scenario {path.name}, row {number}: needs a 'status' or a 'value'")
        changes.append((t, status.value))
    start = changes[0][0]
    changes = [(t - start, s) for t, s in changes]
    return Scenario(name=path.name, changes=tuple(changes), duration=changes[-1][0] + 1, **settings)


def _number(row: dict[str, Any], name: str, path: Path) -> float:
    try:
        value = float(row[name])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"scenario {path.name}: every row needs a number '{name}', got {row!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"scenario {path.name}: '{name}' must be finite, got {row!r}")
    return value
