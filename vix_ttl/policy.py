"""The TTL policy: what each (mode, status) pair does to the caller's TTL."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

from vix_ttl._checks import as_float, check_ttl
from vix_ttl._enum import ValueEnum
from vix_ttl.mode import Mode
from vix_ttl.status import VixStatus

__all__ = ["BASE", "BYPASS", "PANIC_BASE_TTL", "Decision", "Learned", "Rule", "Strategy", "TTLPolicy"]


class Rule(ValueEnum):
    """The two rules that are not a number of seconds; they compare equal to their names
    (``BYPASS == "bypass"``) and to the ``Strategy`` of the same name."""

    BYPASS = "bypass"
    """TTL 0: do not read or write the cache."""
    BASE = "base"
    """The caller's TTL, unchanged."""


_MEMO_SIZE = 1024

BYPASS = Rule.BYPASS
BASE = Rule.BASE

PANIC_BASE_TTL = 0.0
"""The caller's TTL for a PANIC value, everywhere: its mode's floor decides, or it is bypassed."""


@dataclass(frozen=True, slots=True)
class Learned:
    """A TTL learned per key: the square-root rule, between *low* and the long bound.

    The decision for a call (``decide``, ``observe``: no key) is the long bound:
    *high* as a floor, ``max(base_ttl, high)``, like a number of seconds; with *high*
    ``None``, the caller's TTL itself (never longer than what the caller asked). Each
    recomputed value is then kept for its key's own TTL within [*low*, long bound]
    (``ttl``), written with its entry: the hit path reads it as any entry's TTL.

    The rule minimises wrong serves plus *price* wrong serves per computation (the
    Lagrange form of minimising wrong serves under a compute budget, the budget's price
    fixed): a key called *r* times a second whose value changes *c* times a second is
    kept ``(2 price / c) / (sqrt(1 + 2 price r / c) + 1)`` seconds, which is
    ``sqrt(2 price / (r c))`` (TTL ~ 1/sqrt(requests x changes)) for a key called many
    times per change, and the long bound for one called fewer than ``price - 1`` times
    per change (caching it longer costs nothing that recomputing it would save). A key
    nothing is known of yet gets the long bound.

    Raises:
        ValueError: a bound is not a finite number of seconds, ``low`` is 0 (nothing
            would be stored to learn from) or above ``high``, or *price* is not > 0.
    """

    low: float
    high: float | None = None
    price: float = 4.0

    def __post_init__(self) -> None:
        for name in ("low", "high", "price"):
            value = getattr(self, name)
            if value is None and name == "high":
                continue
            if not math.isfinite(as_float(f"Learned {name}", value, "a finite number")):
                raise ValueError(f"Learned {name} must be a finite number, got {value!r}")
        if not 0 < self.low <= (self.low if self.high is None else self.high):
            raise ValueError(
                f"Learned needs 0 < low <= high seconds, got low={self.low!r}, high={self.high!r}"
            )
        if not self.price > 0:
            raise ValueError(f"Learned price must be > 0, got {self.price!r}")

    def ttl(self, requests: float, changes: float, longest: float) -> float:
        """The TTL of a key called *requests* times a second whose value changes *changes*
        times a second, within [``low``, *longest*] (*longest*: the call's decided TTL, the
        long bound; below ``low``, it wins; ``inf``, never expires, is never shortened)."""
        price = self.price
        if longest == math.inf or not (requests > 0 and 0 < changes < math.inf):
            return longest  # never expires, or nothing learned: the long bound
        if requests / changes + 1 <= price:
            return longest  # a cold key: caching it longer costs nothing recomputing would save
        seconds = 2 * price / changes / (math.sqrt(1 + 2 * price * requests / changes) + 1)
        return float(min(longest, max(self.low, seconds)))


RuleLike: TypeAlias = Rule | float | str | Learned
"""A policy cell: ``BYPASS``, ``BASE`` (or ``"bypass"`` / ``"base"``), seconds >= 0, or ``Learned``."""


class Strategy(ValueEnum):
    """What a decision did to the caller's TTL."""

    BYPASS = "bypass"
    """The TTL is 0: the cache is not used."""
    ADAPTIVE = "adaptive"
    """The policy raised the caller's TTL to its floor."""
    BASE = "base"
    """The caller's TTL, unchanged."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The TTL to use for one request, and why."""

    ttl: float
    strategy: Strategy
    mode: Mode
    status: VixStatus


def floor_ttl(floor: float | None, base_ttl: float) -> tuple[float, Strategy]:
    """Apply a compiled rule (``None`` bypasses; a floor of 0 is ``BASE``)."""
    if floor is None:
        return 0.0, _BYPASS
    if base_ttl >= floor:
        return (base_ttl, _BASE) if base_ttl else (0.0, _BYPASS)
    return floor, _ADAPTIVE


# Module constants: reading an Enum member off its class is slow on the hot path.
_BYPASS, _ADAPTIVE, _BASE = Strategy.BYPASS, Strategy.ADAPTIVE, Strategy.BASE


class TTLPolicy:
    """Maps (mode, status) to a rule: ``BYPASS``, ``BASE`` or a floor in seconds.

    A number of seconds is a floor: the TTL becomes ``max(base_ttl, n)``, so the
    policy never lowers the caller's TTL; only ``BYPASS`` does, and a ``Learned``
    cell, whose decision is its long bound and each key's entry kept for the key's
    own TTL within it (``TTLPolicy.learned()``).

    Args:
        cells: mode -> status -> rule, with modes and statuses as members or
            their string values. Every one of the nine cells must be given.

    Raises:
        ValueError: A mode or status is unknown, a cell is missing, or a rule
            is not ``BYPASS``, ``BASE``, a finite number >= 0 or a ``Learned``.
    """

    __slots__ = ("_floors", "_memo", "_rules", "learns", "longest_floor")

    def __init__(self, cells: Mapping[Mode | str, Mapping[VixStatus | str, RuleLike]]) -> None:
        if not isinstance(cells, Mapping):
            raise TypeError(f"TTLPolicy cells must be a mapping mode -> status -> rule, got {cells!r}")
        rules: dict[Mode, dict[VixStatus, Rule | float | Learned]] = {}
        for mode_key, row in cells.items():
            mode = Mode.coerce(mode_key)
            if mode in rules:
                raise ValueError(f"TTLPolicy: mode {mode.value!r} is given twice")
            if not isinstance(row, Mapping):
                raise TypeError(f"TTLPolicy row for {mode.value!r} must be a mapping status -> rule")
            rules[mode] = {}
            for status_key, rule in row.items():
                status = VixStatus.coerce(status_key)
                if status in rules[mode]:
                    raise ValueError(f"TTLPolicy: cell ({mode.value}, {status.value}) is given twice")
                rules[mode][status] = _check_rule(mode, status, rule)
        missing = [f"({m.value}, {s.value})" for m in Mode for s in VixStatus if s not in rules.get(m, {})]
        if missing:
            raise ValueError(f"TTLPolicy is missing cells: {', '.join(missing)}; all nine are required")
        self._rules = rules
        # Compiled: None bypasses, BASE is a floor of 0 (max(base, 0) == base), a
        # Learned cell its long bound (its high, or BASE): each key's own TTL is within it.
        self._floors: dict[Mode, dict[VixStatus, float | None]] = {
            m: {s: _compiled(r) for s, r in row.items()} for m, row in rules.items()
        }
        # A Learned cell makes its breaker learn from recomputations, and its caches ask it
        # for each recomputed key's TTL.
        self.learns = any(isinstance(r, Learned) for row in rules.values() for r in row.values())
        # The longest TTL a cell gives whatever the base TTL (a Learned cell's high).
        self.longest_floor = max((f for row in self._floors.values() for f in row.values() if f), default=0.0)
        # Decisions are immutable and few (3 modes x 3 statuses x the callers'
        # TTLs): building one costs more than the rest of a decide().
        self._memo: dict[tuple[Mode, VixStatus, float], Decision] = {}

    @classmethod
    def default(cls) -> TTLPolicy:
        """The default policy.

        | mode            | panic  | warning | normal |
        |-----------------|--------|---------|--------|
        | NORMAL          | BYPASS | BASE    | BASE   |
        | HIGH_VOLATILITY | 5      | 10      | BASE   |
        | CIRCUIT_OPEN    | 10     | 30      | 60     |
        """
        return cls(
            {
                Mode.NORMAL: {VixStatus.PANIC: BYPASS, VixStatus.WARNING: BASE, VixStatus.NORMAL: BASE},
                Mode.HIGH_VOLATILITY: {VixStatus.PANIC: 5, VixStatus.WARNING: 10, VixStatus.NORMAL: BASE},
                Mode.CIRCUIT_OPEN: {VixStatus.PANIC: 10, VixStatus.WARNING: 30, VixStatus.NORMAL: 60},
            }
        )

    @classmethod
    def learned(cls) -> TTLPolicy:
        """Every cell learned per key by the square-root rule, within bounds each mode sets (opt-in).

        | mode            | panic           | warning          | normal         |
        |-----------------|-----------------|------------------|----------------|
        | NORMAL          | Learned(0.1, 5) | Learned(0.5)     | Learned(0.5)   |
        | HIGH_VOLATILITY | Learned(1, 5)   | Learned(0.5, 10) | Learned(0.5)   |
        | CIRCUIT_OPEN    | Learned(1, 10)  | Learned(1, 30)   | Learned(1, 60) |

        The long bounds are the default table's floors (and 5 s for a panic in NORMAL,
        which is never bypassed): a key nothing is known of, or a cold one, is kept as
        the default policy would keep it (in NORMAL, and for normal values in
        HIGH_VOLATILITY, the caller's TTL, never longer). A key called often enough for
        its TTL to matter is kept shorter, ``TTL ~ 1/sqrt(requests x changes)``
        (``Learned.ttl``), never shorter than the low bound: at most ``1 / low``
        computations per key a second, however many requests, one once the breaker has
        seen sustained panic.
        """
        return cls(
            {
                Mode.NORMAL: {
                    VixStatus.PANIC: Learned(0.1, 5),
                    VixStatus.WARNING: Learned(0.5),
                    VixStatus.NORMAL: Learned(0.5),
                },
                Mode.HIGH_VOLATILITY: {
                    VixStatus.PANIC: Learned(1, 5),
                    VixStatus.WARNING: Learned(0.5, 10),
                    VixStatus.NORMAL: Learned(0.5),
                },
                Mode.CIRCUIT_OPEN: {
                    VixStatus.PANIC: Learned(1, 10),
                    VixStatus.WARNING: Learned(1, 30),
                    VixStatus.NORMAL: Learned(1, 60),
                },
            }
        )

    def rule(self, mode: Mode | str, status: VixStatus | str) -> Rule | float | Learned:
        """The rule of one cell."""
        return self._rules[Mode.coerce(mode)][VixStatus.coerce(status)]

    def floors(self, mode: Mode) -> dict[VixStatus, float | None]:
        """One mode's row compiled for the hot path: ``None`` bypasses, else a floor."""
        return self._floors[mode]

    def decide(self, mode: Mode | str, status: VixStatus | str, base_ttl: float | None) -> Decision:
        """The decision for one request in *mode* with *status* and the caller's *base_ttl*."""
        base = check_ttl("base_ttl", base_ttl)
        return self.decision(Mode.coerce(mode), VixStatus.coerce(status), base)

    def decision(self, mode: Mode, status: VixStatus, base_ttl: float) -> Decision:
        """``decide`` for arguments already checked: members and seconds >= 0."""
        key = (mode, status, base_ttl)
        decision = self._memo.get(key)
        if decision is None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()  # callable TTLs can make many bases; stay bounded
            ttl, strategy = floor_ttl(self._floors[mode][status], base_ttl)
            decision = self._memo[key] = Decision(ttl, strategy, mode, status)
        return decision

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TTLPolicy) and self._rules == other._rules

    def __hash__(self) -> int:
        return hash(tuple((m, s, r) for m, row in self._rules.items() for s, r in row.items()))

    def __repr__(self) -> str:
        cells = {
            m.value: {s.value: r.value if isinstance(r, Rule) else r for s, r in row.items()}
            for m, row in self._rules.items()
        }
        return f"TTLPolicy({cells!r})"


def _compiled(rule: Rule | float | Learned) -> float | None:
    if rule is BYPASS:
        return None
    if rule is BASE:
        return 0.0
    if isinstance(rule, Learned):
        return 0.0 if rule.high is None else float(rule.high)
    return float(rule)


def _check_rule(mode: Mode, status: VixStatus, rule: object) -> Rule | float | Learned:
    if isinstance(rule, Learned):
        return rule
    if isinstance(rule, str) and rule.lower() in ("bypass", "base"):
        return Rule(rule.lower())
    if isinstance(rule, int | float) and not isinstance(rule, bool):
        seconds = as_float(f"TTLPolicy cell ({mode.value}, {status.value})", rule, "a number of seconds")
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    kind = (
        ValueError if isinstance(rule, str | int | float) else TypeError
    )  # a wrong value, or no value at all
    raise kind(
        f"TTLPolicy cell ({mode.value}, {status.value}) is {rule!r}: expected BYPASS, BASE, "
        f"a finite number of seconds >= 0 or a Learned"
    )
