"""Scenarios for the simulator: the traffic, the status timeline and the run's settings.

A ``Scenario`` is built in (``lineup_leak``, the production story;
``flash_crash``, short violent panics; ``calm_day``, warning bursts and no
panic) or replayed from a file of timestamped statuses or observed values
(``load_scenario``).
"""

from __future__ import annotations

import bisect
import csv
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vix_ttl.detector import VolatilityDetector
from vix_ttl.mode import Thresholds
from vix_ttl.status import VixStatus

__all__ = [
    "BUILT_IN",
    "DEFAULT_CHANGE_EVERY",
    "DEFAULT_TOLERANCE",
    "MAX_IN_FLIGHT",
    "MAX_REQUESTS",
    "MAX_SECONDS",
    "MAX_STEPS",
    "Scenario",
    "calm_day",
    "flash_crash",
    "lineup_leak",
    "load_scenario",
]

MAX_SECONDS = 7 * 24 * 3600.0
"""The longest run simulated: its per-second series are held in memory."""

# What a run can finish: each request is one real call, each step one turn of the loop.
# Measured on a 2-core AMD EPYC, Python 3.11: 60,000 requests a CPU-second when every call
# computes (bypass, all panic) to 240,000 when most are hits (the default run's strategies:
# 160,000 to 240,000); 230,000 steps a second with no traffic; about 3 KB per call waiting on
# the backend. The limits sit far above any run one waits for (the default run: 6.3 million
# requests, 201,600 steps) and far below the runs that never end (--rate 1e9 for the default
# 1 h 45 min is 6.3e12 requests: a year).
MAX_REQUESTS = 1e9
"""The most requests one strategy simulates (rate times duration): 1.2 to 5 hours of work, as measured."""
MAX_STEPS = 1e9
"""The most steps a run takes (duration / step): over an hour of work at the 230,000 a second measured."""
MAX_IN_FLIGHT = 1e6
"""The most calls waiting on the backend at once (rate times simulated latency): about 3 GB a strategy."""

DEFAULT_TOLERANCE = 0.005
"""A replayed file of observed values: the relative move of a value that changes the truth.

0.5 %: one price tick of 0.01 on odds of 2.0. A smaller move is the feed's noise, not a
new price a caller would act on; counted, each wobble of a calm feed (0.1 % a second in
tests/data/odds.json) made a value cached for a second "wrong".
"""

DEFAULT_CHANGE_EVERY = {"normal": 300.0, "warning": 30.0, "panic": 2.0}
"""Mean seconds between two changes of a key's true value, by the status in force."""


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
    """Worker processes of the fleet, each coalescing its own calls, over one shared store."""
    change_every: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CHANGE_EVERY))
    """The truth model: status -> mean seconds between two changes of a key's true value."""
    truth_changes: tuple[float, ...] | None = None
    """Observed values' own truth (a replayed file): every key changes at these times."""
    truth_tolerance: float | None = None
    """Observed values: the relative move that counted as a change of the truth (None: no values)."""

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            (
                "duration",
                0 < self.duration <= MAX_SECONDS,
                f"in (0, {MAX_SECONDS:g}] seconds (a week at most)",
            ),
            ("rate", self.rate > 0, "> 0"),
            ("hot_share", 0 <= self.hot_share <= 1, "in [0, 1]"),
            ("keys", self.keys >= 1, ">= 1"),
            ("latency", 0 <= self.latency <= 600, "in [0, 600] seconds"),
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
        self._check_work()
        if set(self.change_every) != {s.value for s in VixStatus} or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= self.step
            for v in self.change_every.values()
        ):
            # A value that changes more often than every step cannot be told apart from one
            # that changes every step, and would cost memory for nothing.
            raise ValueError(
                "scenario change_every must give normal, warning and panic a finite number of "
                f"seconds >= the step ({self.step:g} s), got {self.change_every!r}"
            )
        if not self.changes or self.changes[0][0] > 0:
            raise ValueError("scenario changes must start at time 0")
        for _, status in self.changes:
            VixStatus.coerce(status)

    def _check_work(self) -> None:
        """Refuse a run that cannot finish, before it starts: each limit says why it is there."""
        requests = self.rate * self.duration
        if requests > MAX_REQUESTS:
            raise ValueError(
                f"scenario rate {self.rate:g}/s for {self.duration:g} s is {requests:.3g} requests per "
                f"strategy, over the limit of {MAX_REQUESTS:.0e} requests: each is a real call, and the "
                f"simulator runs 60,000 to 240,000 a second (measured), so {MAX_REQUESTS:.0e} already "
                f"takes 1.2 to 5 hours; lower rate or shorten the run"
            )
        steps = self.duration / self.step
        if steps > MAX_STEPS:
            raise ValueError(
                f"scenario step {self.step:g} s over {self.duration:g} s is {steps:.3g} steps, over the "
                f"limit of {MAX_STEPS:.0e}: the simulator runs about 230,000 steps a second (measured), "
                f"so {MAX_STEPS:.0e} already takes over an hour; lengthen step or shorten the run"
            )
        waiting = self.rate * self.latency_steps * self.step
        if waiting > MAX_IN_FLIGHT:
            raise ValueError(
                f"scenario rate {self.rate:g}/s with a backend of {self.latency_steps * self.step:g} s "
                f"is up to {waiting:.3g} calls waiting at once, over the limit of {MAX_IN_FLIGHT:.0e}: "
                f"without coalescing every panic call computes, and each waiting call holds about "
                f"3 KB (measured), 3 GB for {MAX_IN_FLIGHT:.0e}; lower rate or the backend's latency"
            )

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


def flash_crash(
    *, panics: int = 3, panic_minutes: float = 2, every_minutes: float = 20, **settings: Any
) -> Scenario:
    """Short violent panics: *panics* of *panic_minutes* each, *every_minutes* apart, each
    announced by a minute of warning, then calm to the end of the last period."""
    if panic_minutes + 1 > every_minutes / 2:
        raise ValueError("flash-crash: a panic and its minute of warning must fit in half a period")
    changes: list[tuple[float, str]] = [(0.0, "normal")]
    for n in range(panics):
        start = (n * every_minutes + every_minutes / 2) * 60
        changes += [(start - 60, "warning"), (start, "panic"), (start + panic_minutes * 60, "normal")]
    return Scenario(
        name="flash-crash", changes=tuple(changes), duration=panics * every_minutes * 60, **settings
    )


def calm_day(
    *, hours: float = 1, bursts_per_hour: int = 6, burst_minutes: float = 2, **settings: Any
) -> Scenario:
    """No panic: calm with short bursts of warning (*bursts_per_hour*, *burst_minutes* each)."""
    period = 3600 / bursts_per_hour
    if not 0 < burst_minutes * 60 < period:
        raise ValueError("calm-day: a burst must be shorter than the time between two")
    changes: list[tuple[float, str]] = [(0.0, "normal")]
    for n in range(round(hours * bursts_per_hour)):
        start = n * period + period / 2
        changes += [(start, "warning"), (start + burst_minutes * 60, "normal")]
    return Scenario(name="calm-day", changes=tuple(changes), duration=hours * 3600, **settings)


BUILT_IN: dict[str, Callable[..., Scenario]] = {
    "lineup-leak": lineup_leak,
    "flash-crash": flash_crash,
    "calm-day": calm_day,
}
"""The bundled scenarios, by the name ``--scenario`` takes."""


def load_scenario(
    path: Path, *, end: float | None = None, tolerance: float = DEFAULT_TOLERANCE, **settings: Any
) -> Scenario:
    """A scenario replayed from a file of timestamped statuses or observed values.

    CSV with a header, or JSON (a list of objects), with ``t`` (seconds from
    the start) and either ``status`` or ``value``, never both (plus an optional
    ``series``, default one series): observed values go through a
    ``VolatilityDetector``, and a value of a series that moved by more than
    *tolerance* (relative, default 0.5 %) from the last one that did changes the
    truth of every key: smaller moves add up until they count.
    Rows must come in time order. The run ends at *end* seconds from the first
    row (default: one second after the last row, whose status holds until then).

    Raises:
        ValueError: The file cannot be read as such rows; the message says why.
    """
    rows = _rows(path)
    if isinstance(tolerance, bool) or not (isinstance(tolerance, int | float) and 0 <= tolerance < math.inf):
        raise ValueError(f"scenario tolerance must be a finite number >= 0, got {tolerance!r}")
    detector = VolatilityDetector()
    changes: list[tuple[float, str]] = []
    last_values: dict[str, float] = {}
    truth: list[float] = []  # the times an observed value moved: the truth changed
    for number, row in enumerate(rows, start=1):
        t = _number(row, "t", path)
        if changes and t < changes[-1][0]:
            raise ValueError(
                f"scenario {path.name}, row {number}: t={t:g} comes before the row above it "
                f"(t={changes[-1][0]:g}); rows must be in time order"
            )
        if "status" in row and row["status"] not in (None, ""):
            try:
                status = VixStatus.coerce(str(row["status"]))
            except ValueError as exc:
                raise ValueError(f"scenario {path.name}, row {number}: {exc}") from None
        elif "value" in row:
            series, value = row.get("series") or "default", _number(row, "value", path)
            if not isinstance(series, str | int | float):
                raise ValueError(
                    f"scenario {path.name}, row {number}: 'series' must be a name, got {series!r}"
                )
            series = str(series)
            reference = last_values.setdefault(series, value)  # the value the truth holds
            if abs(value - reference) > tolerance * abs(reference):
                truth.append(t)
                last_values[series] = value
            try:
                status = detector.update(series, value)
            except ValueError as exc:
                raise ValueError(f"scenario {path.name}, row {number}: {exc}") from None
        else:
            raise ValueError(f"scenario {path.name}, row {number}: needs a 'status' or a 'value'")
        changes.append((t, status.value))
    start = changes[0][0]
    changes = [(t - start, s) for t, s in changes]
    if last_values:
        settings["truth_changes"] = tuple(t - start for t in truth)
        settings["truth_tolerance"] = tolerance
    duration = changes[-1][0] + 1 if end is None else end
    if end is not None and not (math.isfinite(end) and end > changes[-1][0]):
        raise ValueError(
            f"--end must come after the last row, at {changes[-1][0]:g} s from the first; got {end:g}"
        )
    if duration > MAX_SECONDS:
        raise ValueError(
            f"scenario {path.name}: the run would last {duration:g} s, more than a week ({MAX_SECONDS:g} s)"
        )
    return Scenario(name=path.name, changes=tuple(changes), duration=duration, **settings)


def _rows(path: Path) -> list[dict[str, Any]]:
    """The rows of the scenario file *path*, each a dict, with statuses or values, not both."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's export may begin with a BOM
    except OSError as exc:
        raise ValueError(f"cannot read scenario {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"scenario {path.name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        rows = json.loads(text) if path.suffix.lower() == ".json" else _csv_rows(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"scenario {path.name}: not valid JSON ({exc})") from None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise ValueError(
            f"scenario {path.name}: expected a non-empty list of rows with 't' and 'status' or 'value'"
        )
    if any("status" in row for row in rows) and any("value" in row for row in rows):
        raise ValueError(
            f"scenario {path.name}: has both a 'status' and a 'value' column: drop 'value' to replay "
            "the statuses as given, or 'status' to have a VolatilityDetector judge the values, "
            "which are then the truth"
        )
    return rows


def _csv_rows(text: str) -> list[dict[str, Any]]:
    """A CSV's rows by column; a header written ``t, status`` names the columns t and status."""
    reader = csv.DictReader(text.splitlines(), skipinitialspace=True)
    return [{(k or "").strip(): v for k, v in row.items()} for row in reader]


def _number(row: dict[str, Any], name: str, path: Path) -> float:
    try:
        value = float(row[name])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"scenario {path.name}: every row needs a number '{name}', got {row!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"scenario {path.name}: '{name}' must be finite, got {row!r}")
    return value
