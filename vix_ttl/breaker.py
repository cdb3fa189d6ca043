"""The VIX circuit breaker: a rolling window, a mode machine and a TTL policy under one lock."""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from vix_ttl._checks import as_float, check_clock, check_count, check_name, check_seconds, check_ttl
from vix_ttl._log import get_logger
from vix_ttl.learning import ChangeRate, KeyRates
from vix_ttl.mode import Mode, ModeMachine, Thresholds, Transition
from vix_ttl.policy import Decision, Learned, Strategy, TTLPolicy, floor_ttl
from vix_ttl.status import VixStatus
from vix_ttl.window import RollingWindow, Window

__all__ = [
    "DEFAULT_BUCKET_SECONDS",
    "DEFAULT_WINDOW_SECONDS",
    "BreakerConfig",
    "Clock",
    "Listener",
    "VIXCircuitBreaker",
]

Clock = Callable[[], float]
"""Any zero-argument callable returning seconds (``time.monotonic``, a ``FakeClock``)."""

Listener = Callable[[Transition], object]
"""Called with every ``Transition``, outside the breaker's lock."""

_T = TypeVar("_T")

DEFAULT_WINDOW_SECONDS = 1800.0
DEFAULT_BUCKET_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """The settings of one breaker, as built (``get_breaker`` compares them by field)."""

    window_seconds: float
    bucket_seconds: float
    min_samples: int
    thresholds: Thresholds
    policy: TTLPolicy
    stabilization_seconds: float
    clock: Clock


_log = get_logger(__name__)

# Module constants: reading an Enum member off its class is slow on the hot path.
_PANIC = VixStatus.PANIC
_BY_VALUE: dict[str, VixStatus] = {status.value: status for status in VixStatus}
_BYPASS, _ADAPTIVE, _BASE = Strategy.BYPASS, Strategy.ADAPTIVE, Strategy.BASE
# Where a strategy's count sits in a status row (the floor is at 0).
_N_BYPASS, _N_ADAPTIVE, _N_BASE = 1, 2, 3
_COUNT = {_BYPASS: _N_BYPASS, _ADAPTIVE: _N_ADAPTIVE, _BASE: _N_BASE}
_LOG_LEVEL = {Mode.NORMAL: "info", Mode.HIGH_VOLATILITY: "warning", Mode.CIRCUIT_OPEN: "critical"}
_ADJACENT = [(a, b) for a, b in zip(Mode, list(Mode)[1:], strict=False)]
_TRANSITION_KEYS = [f"{a.value}->{b.value}" for a, b in _ADJACENT] + [
    f"{b.value}->{a.value}" for a, b in _ADJACENT
]


class VIXCircuitBreaker:
    """Watches the share of panic over a rolling window and adapts cache TTLs to it.

    Every ``record`` adds one sample and settles the mode; ``decide`` turns a
    status and the caller's TTL into a ``Decision`` under the current mode.
    Both evaluate the window as of the clock's *now*, so a window drained by
    time is seen at the next call. One short critical section covers the
    window and the mode machine; listeners and logs run after it, outside it.

    Args:
        name: Shown in logs and metrics.
        window_seconds: Clock time covered by the rolling window.
        bucket_seconds: Resolution of the window; it must divide *window_seconds*.
        min_samples: The breaker does not step up while the window holds fewer samples.
        thresholds: Enter/exit panic ratios of each mode.
        policy: What each (mode, status) does to the caller's TTL.
        stabilization_seconds: A step down waits until the lower mode's
            condition has held this long; stepping up stays immediate.
        clock: Zero-argument callable returning seconds.
        window: The window to judge by, for fleet mode (``vix_ttl.fleet.RedisWindow``);
            default: a ``RollingWindow`` of *window_seconds* and *bucket_seconds*.

    Raises:
        ValueError: A size or threshold is out of range (the message names it).
        TypeError: *clock* is not callable, or an argument has the wrong type.
    """

    def __init__(
        self,
        *,
        name: str = "default",
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        bucket_seconds: float = DEFAULT_BUCKET_SECONDS,
        min_samples: int = 20,
        thresholds: Thresholds | None = None,
        policy: TTLPolicy | None = None,
        stabilization_seconds: float = 0,
        clock: Clock = time.monotonic,
        window: Window | None = None,
    ) -> None:
        check_name("name", name)
        check_count("min_samples", min_samples, minimum=0)
        thresholds = Thresholds() if thresholds is None else thresholds
        if not isinstance(thresholds, Thresholds):
            raise TypeError(f"thresholds must be a Thresholds, got {thresholds!r}")
        policy = TTLPolicy.default() if policy is None else policy
        if not isinstance(policy, TTLPolicy):
            raise TypeError(f"policy must be a TTLPolicy, got {policy!r}")
        stabilization = check_seconds("stabilization_seconds", stabilization_seconds)
        clock = check_clock("clock", clock)
        if window is None:
            window = RollingWindow(window_seconds, bucket_seconds)
        elif (window_seconds, bucket_seconds) != (DEFAULT_WINDOW_SECONDS, DEFAULT_BUCKET_SECONDS) and (
            window_seconds,
            bucket_seconds,
        ) != (window.window_seconds, window.bucket_seconds):
            raise ValueError(
                "window_seconds and bucket_seconds belong to the window given: set them there, "
                "not on the breaker"
            )

        self.name = name
        self._config = BreakerConfig(
            window_seconds=window.window_seconds,
            bucket_seconds=window.bucket_seconds,
            min_samples=min_samples,
            thresholds=thresholds,
            policy=policy,
            stabilization_seconds=stabilization,
            clock=clock,
        )
        self._clock = clock
        self._window = window
        self._machine = ModeMachine(thresholds, min_samples, stabilization)
        # Bound once: looking a method up costs more than half of what it does.
        self._add = window.add
        # A shared window (fleet mode) brings the lock its flusher takes too.
        self._lock = window.lock or threading.Lock()
        self._listeners: tuple[Listener, ...] = ()
        # Transitions applied and not yet published, in the order they were applied; one
        # thread at a time publishes them (re-entrant: a listener may record).
        self._unpublished: deque[Transition] = deque()
        self._publishing = threading.RLock()
        self._reset_state()

    @property
    def config(self) -> BreakerConfig:
        """The settings this breaker was built with (the window's sizes are its window's)."""
        return self._config

    @property
    def clock(self) -> Clock:
        """The clock the window and the mode machine read."""
        return self._clock

    @property
    def window(self) -> Window:
        """The window the breaker judges by."""
        return self._window

    @property
    def policy(self) -> TTLPolicy:
        """What each (mode, status) does to the caller's TTL."""
        return self._config.policy

    @property
    def thresholds(self) -> Thresholds:
        """The panic ratios at which the breaker steps up and down."""
        return self._config.thresholds

    # -- the hot path ---------------------------------------------------------

    def record(self, status: VixStatus | str) -> Mode:
        """Record one sample of *status* and return the mode after it."""
        if status.__class__ is not VixStatus:
            try:  # most callers give the value: one lookup in a dict of plain strings
                status = _BY_VALUE[status]
            except (KeyError, TypeError):
                status = VixStatus.coerce(status)  # another case, or the error naming the valid values
        lock = self._lock
        lock.acquire()  # not `with`: twice as fast here, and this is the hot path
        try:
            now = self._clock()
            self._add(now, status is _PANIC)
            window, machine = self._window, self._machine
            ratio = window.panics / window.total
            hops = None
            if not machine.low <= ratio < machine.high or machine.pending:  # else the mode holds
                hops = machine.update(ratio, window.total, now)
                if hops:
                    self._apply(hops)
            mode = machine.mode
        finally:
            lock.release()
        if hops:
            self._publish(hops)
        return mode

    def record_panic_status(self, status: VixStatus | str) -> Mode:
        """``record``, under its 0.1 name (deprecated)."""
        _deprecated("record_panic_status", "record")
        return self.record(status)

    def observe(self, status: VixStatus, base_ttl: float, now: float | None = None) -> float:
        """``record`` then ``decide`` in one critical section; return the TTL (0 bypasses).

        The per-call step of a cache (``@vix_cached``, the aiocache serializer): *status*
        must be a ``VixStatus`` member and *base_ttl* a checked float, for this path
        validates nothing. *now*: the breaker's clock, read by a caller that reads
        it anyway (else read here). Its first steps are ``record``'s, written out
        again on purpose: a shared helper costs a tenth of ``record`` in call
        overhead. ``tests/test_properties.py`` proves the two agree.
        """
        lock = self._lock
        lock.acquire()
        try:
            if now is None:
                now = self._clock()
            self._add(now, status is _PANIC)
            window, machine = self._window, self._machine
            ratio = window.panics / window.total
            hops = None
            if not machine.low <= ratio < machine.high or machine.pending:  # else the mode holds
                hops = machine.update(ratio, window.total, now)
                if hops:
                    self._apply(hops)
            # floor_ttl(), written out: a call here costs a tenth of a cache hit.
            # One row per status: the current mode's floor, then its decision counts.
            row = self._rows[status]
            floor = row[0]
            if floor is None or not (base_ttl or floor):
                ttl = 0.0
                row[_N_BYPASS] += 1
            elif base_ttl >= floor:
                ttl = base_ttl
                row[_N_BASE] += 1
            else:
                ttl = floor
                row[_N_ADAPTIVE] += 1
        finally:
            lock.release()
        if hops:
            self._publish(hops)
        return ttl

    def decide(self, status: VixStatus | str, base_ttl: float | None) -> Decision:
        """The TTL decision for *status* and the caller's *base_ttl* (``None``: never expires);
        records nothing."""
        if status.__class__ is not VixStatus:
            status = VixStatus.coerce(status)
        base = check_ttl("base_ttl", base_ttl)
        lock = self._lock
        lock.acquire()
        try:
            hops = self._settle()
            mode, row = self._machine.mode, self._rows[status]
            decision = self.policy.decision(mode, status, base)
            row[_COUNT[decision.strategy]] += 1
        finally:
            lock.release()
        if hops:
            self._publish(hops)
        return decision

    def ttl_for(self, status: VixStatus, base_ttl: float, now: float | None = None) -> float:
        """The TTL ``decide`` would give, recording and counting nothing (``observe``'s terms).

        For caches whose statuses are recorded elsewhere (an HTTP response's
        ``X-Vix-Status``, recorded when it is stored).
        """
        return self.ttl_and_mode(status, base_ttl, now)[0]

    def ttl_and_mode(
        self, status: VixStatus, base_ttl: float, now: float | None = None
    ) -> tuple[float, Mode]:
        """``ttl_for``'s TTL and the mode it was judged in, in one step: what an HTTP response's
        ``max-age`` and allowances restate."""
        with self._lock:
            hops = self._settle(now)
            floor = self._rows[status][0]
            mode = self._machine.mode
        if hops:
            self._publish(hops)
        return floor_ttl(floor, base_ttl)[0], mode

    def learn(
        self,
        key: Hashable,
        status: VixStatus | str,
        ttl: float | None,
        *,
        arrivals: float,
        watched: float,
        interval: float | None = None,
        changed: bool | None = None,
    ) -> float:
        """One recomputation of *key* under *status*, whose call was decided *ttl*: what it
        teaches, and the TTL to keep its value for.

        It saw *arrivals* calls of the key over *watched* seconds (its request rate) and,
        when the value it replaces could be compared, whether it *changed* over the
        *interval* seconds since that one was computed (the status's rate and the key's
        own). Returns *ttl*, or the key's shorter TTL by the square-root rule when the
        current mode's cell for *status* is ``Learned``. Called by a cache at each
        recomputation (never on a hit) when the policy has ``Learned`` cells; without
        them, a ``TypeError``.

        *interval* and *changed* go together: either alone teaches no change.

        Raises:
            TypeError: the policy learns nothing, or an argument is of the wrong type.
            ValueError: *status* is not a status, *ttl* is negative or NaN, or
                *arrivals*, *watched* or *interval* is not a finite number >= 0.
        """
        if not self.policy.learns:
            raise TypeError(f"breaker {self.name!r}: its policy learns nothing (no Learned cells)")
        if status.__class__ is not VixStatus:
            status = VixStatus.coerce(status)
        try:
            hash(key)
        except TypeError:
            raise TypeError(f"learn key must be hashable, got {key!r}") from None
        ttl = check_ttl("learn ttl", ttl)
        check_seconds("learn watched", watched)
        if not math.isfinite(as_float("learn arrivals", arrivals, "a number of calls")) or arrivals < 0:
            raise ValueError(f"learn arrivals must be a finite number of calls >= 0, got {arrivals!r}")
        if interval is not None:
            check_seconds("learn interval", interval)
        if changed is not None and not isinstance(changed, bool):
            raise TypeError(f"learn changed must be True, False or None (not compared), got {changed!r}")
        with self._lock:
            rates, keys = self._rates, self._keys
            assert rates is not None and keys is not None  # a learning policy's breaker has both
            seen = expected = 0.0
            if interval is not None and changed is not None:
                before = rates.rate(status)
                rates.observe(status, interval, changed)
                if 0 < before < math.inf:  # what the status's rate predicted, against what was seen
                    seen, expected = float(changed), -math.expm1(-before * interval)
            requests, relative = keys.observe(
                key, arrivals, watched, changed=seen, expected=expected, interval=interval or 0.0
            )
            rule = self.policy.rule(self._machine.mode, status)
            if isinstance(rule, Learned):
                ttl = rule.ttl(requests, relative * rates.rate(status), ttl)
        return ttl

    @property
    def learned_intervals(self) -> dict[str, float]:
        """Per status, the mean seconds between changes learned so far (empty: the policy learns nothing)."""
        if self._rates is None:
            return {}
        rates = self._rates
        return self._read(lambda: {status.value: rates.interval(status) for status in VixStatus})

    def get_adaptive_ttl(self, status: VixStatus | str, base_ttl: float | None) -> tuple[float, str]:
        """``decide`` as a ``(ttl, strategy)`` tuple; records nothing (deprecated: 0.1's name)."""
        _deprecated("get_adaptive_ttl", "decide")
        decision = self.decide(status, base_ttl)
        return decision.ttl, decision.strategy.value

    # -- reads ----------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        """The mode as of now."""
        return self._read(lambda: self._machine.mode)

    @property
    def panic_ratio(self) -> float:
        """Panic samples / all samples in the window as of now (0.0 when empty)."""
        return self._read(lambda: self._window.ratio)

    @property
    def samples(self) -> int:
        """Samples in the window as of now."""
        return self._read(lambda: self._window.total)

    def metrics(self) -> dict[str, Any]:
        """A consistent snapshot of the breaker's state and counters, as of now."""
        return self._read(self._snapshot)

    def get_metrics(self) -> dict[str, Any]:
        """``metrics``, under its 0.1 name (deprecated)."""
        _deprecated("get_metrics", "metrics")
        return self.metrics()

    # -- listeners and lifecycle ----------------------------------------------

    def subscribe(self, callback: Listener) -> Callable[[], None]:
        """Call *callback* with every ``Transition``; return a function that unsubscribes it."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        with self._lock:
            self._listeners = (*self._listeners, callback)

        def unsubscribe() -> None:
            with self._lock:
                listeners = list(self._listeners)
                if callback in listeners:
                    listeners.remove(callback)
                self._listeners = tuple(listeners)

        return unsubscribe

    def reset(self) -> None:
        """Back to a fresh NORMAL breaker: empty window, zeroed counters. Listeners stay."""
        with self._lock:
            self._window.reset()
            self._machine.reset()
            self._reset_state()

    def __repr__(self) -> str:
        return f"<VIXCircuitBreaker {self.name!r} mode={self._machine.mode.value}>"

    # -- internals --------------------------------------------------------------

    def _reset_state(self) -> None:
        self._rates = ChangeRate() if self.policy.learns else None
        self._keys = KeyRates() if self.policy.learns else None
        self._rows: dict[VixStatus, list[Any]] = {status: [None, 0, 0, 0] for status in VixStatus}
        self._set_floors(Mode.NORMAL)
        self._transitions = dict.fromkeys(_TRANSITION_KEYS, 0)
        self._time_in_mode = dict.fromkeys(Mode, 0.0)
        self._mode_since = self._clock()
        self._listener_errors = 0
        self._log_errors = 0

    def _read(self, read: Callable[[], _T]) -> _T:
        with self._lock:
            hops = self._settle()
            value = read()
        if hops:
            self._publish(hops)
        return value

    def _settle(self, now: float | None = None) -> list[Transition] | None:
        """Move the window to *now* (default: the clock's) and settle the mode. Caller holds the lock."""
        if now is None:
            now = self._clock()
        window = self._window
        window.advance(now)
        hops = self._machine.update(window.ratio, window.total, now)
        if hops:
            self._apply(hops)
        return hops

    def _apply(self, hops: list[Transition]) -> None:
        """Book-keeping of a mode change. Caller holds the lock."""
        last = hops[-1]
        for hop in hops:
            self._transitions[f"{hop.old.value}->{hop.new.value}"] += 1
        self._time_in_mode[hops[0].old] += last.at - self._mode_since
        self._mode_since = last.at
        self._set_floors(last.new)
        self._unpublished.extend(hops)

    def _set_floors(self, mode: Mode) -> None:
        """Put *mode*'s floors in the rows the hot path reads (a ``Learned`` cell's: its long bound)."""
        for status, floor in self.policy.floors(mode).items():
            self._rows[status][0] = floor

    def _publish(self, hops: list[Transition]) -> None:
        """Publish every transition applied so far, *hops* among them, once each and in the
        order they were applied: outside the lock, one thread at a time. A thread that applied
        some returns once they have gone out, by its hand or an earlier one's (two threads
        publishing at once could deliver a later hop before an earlier one)."""
        with self._publishing:
            unpublished = self._unpublished
            while unpublished:
                self._deliver(unpublished.popleft())

    def _deliver(self, hop: Transition) -> None:
        listeners = self._listeners
        self._log(
            _LOG_LEVEL[hop.new],
            "breaker_mode_changed",
            old_mode=hop.old.value,
            new_mode=hop.new.value,
            panic_ratio_pct=round(hop.panic_ratio * 100, 2),
            trigger=hop.trigger,
        )
        for listener in listeners:
            try:
                listener(hop)
            except Exception:
                with self._lock:
                    self._listener_errors += 1
                self._log(
                    "exception",
                    "breaker_listener_failed",
                    listener=repr(listener),
                    new_mode=hop.new.value,
                )

    def _log(self, level: str, event: str, **fields: object) -> None:
        try:
            getattr(_log, level)(event, breaker=self.name, **fields)
        except Exception:
            # A broken logging set-up (a closed stream) must not fail the
            # caller's request; the count shows it in metrics().
            with self._lock:
                self._log_errors += 1

    def _snapshot(self) -> dict[str, Any]:
        window, mode = self._window, self._machine.mode
        time_in_mode = {m.value: t for m, t in self._time_in_mode.items()}
        time_in_mode[mode.value] += self._clock() - self._mode_since
        ratio = window.ratio
        return {
            "breaker": self.name,
            "mode": mode.value,
            "panic_ratio": ratio,
            "panic_ratio_pct": round(ratio * 100, 2),
            "samples": window.total,
            "panic_samples": window.panics,
            "window_seconds": window.window_seconds,
            "bucket_seconds": window.bucket_seconds,
            "min_samples": self._machine.min_samples,
            "mode_changes_total": sum(self._transitions.values()),
            "transitions": dict(self._transitions),
            "time_in_mode_seconds": time_in_mode,
            "decisions": {s.value: sum(row[_COUNT[s]] for row in self._rows.values()) for s in Strategy},
            "decisions_by_status": {
                status.value: {s.value: row[_COUNT[s]] for s in Strategy}
                for status, row in self._rows.items()
            },
            "adaptive_ttl_applied": sum(row[_COUNT[_ADAPTIVE]] for row in self._rows.values()),
            **self._window.metrics(),
            "listener_errors": self._listener_errors,
            "log_errors": self._log_errors,
        }


def _deprecated(name: str, instead: str) -> None:
    warnings.warn(
        f"VIXCircuitBreaker.{name} is deprecated since 0.3 and will be removed in 1.0: use {instead}",
        DeprecationWarning,
        stacklevel=3,
    )
