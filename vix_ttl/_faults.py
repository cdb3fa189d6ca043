"""Faults logged once per burst, not once per call: a failing backend, rejected entries.

When Redis goes down under 1,000 requests/s, one error line per request would
bury the log; so would a flood of forged entries. The first fault of a burst
is logged with its exception; while faults go on, a reminder with the count
goes out at most every ``remind_seconds``; the first success at least
``quiet_seconds`` after the burst's last fault logs the end of it and how many
faults it had. A server that fails some calls and answers others (one master of
a cluster down, a Redis full under ``noeviction``) is one burst, not one per call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

from vix_ttl._log import get_logger

__all__ = [
    "BACKEND",
    "FLEET",
    "NOT_REPLICATED",
    "QUIET_SECONDS",
    "REFRESH",
    "REJECTED",
    "SERVED_ON_ERROR",
    "UNSTORABLE",
    "Events",
    "FaultLog",
    "UnsentError",
    "said",
]

QUIET_SECONDS = 1.0
"""How long an operation must go without a fault before a success ends its burst."""

_log = get_logger(__name__)


class Events(NamedTuple):
    """The log events of one kind of fault: its first, its reminders, its end."""

    first: str
    reminder: str
    end: str


BACKEND = Events("cache_backend_failed", "cache_backend_still_failing", "cache_backend_recovered")
"""A cache backend raised or timed out: the call computed anyway."""
REJECTED = Events("cache_entry_rejected", "cache_entries_still_rejected", "cache_entries_valid_again")
"""An entry of a shared store failed its signature check or could not be decoded."""
REFRESH = Events("cache_refresh_failed", "cache_refreshes_still_failing", "cache_refreshes_recovered")
"""A background refresh raised: the entry it would have replaced stays."""
SERVED_ON_ERROR = Events("cache_served_on_error", "cache_still_served_on_error", "cache_computes_again")
"""The computation raised and a stale entry was served instead (stale_if_error)."""
FLEET = Events("fleet_window_unreachable", "fleet_window_still_unreachable", "fleet_window_rejoined")
"""A fleet window's flush failed: its breaker judges by its own window until one succeeds."""
NOT_REPLICATED = Events(
    "fleet_window_not_replicated", "fleet_window_still_not_replicated", "fleet_window_replicated_again"
)
"""A fleet window's master has replicas and none acknowledged a flush: sent again until one does."""
UNSTORABLE = Events(
    "cache_value_not_storable", "cache_values_still_not_storable", "cache_values_storable_again"
)
"""The cache's serializer cannot encode a value, or gives back another one: not stored."""


class FaultLog:
    """One kind of fault, as seen by one decorated function (or one serializer or window).

    Bursts are kept per operation: a server that answers reads and refuses writes is
    one burst of failed writes, not a burst that each successful read ends. Each line
    keeps the error's own message (redis-py's ``repr`` of its errors drops it). A fault
    that says the set-up is wrong (a Redis Cluster reached through a plain client, a
    replica written to) is named once, with what to do, and reminded of every
    ``remind_seconds`` while it goes on: some commands of such a set-up succeed, and
    would otherwise end a burst and start another at every call.
    """

    __slots__ = (
        "_bursts",
        "_clock",
        "_events",
        "_function",
        "_misconfigured",
        "_quiet_seconds",
        "_remind_seconds",
        "failing",
    )

    def __init__(
        self,
        function: str,
        *,
        events: Events = BACKEND,
        remind_seconds: float = 60.0,
        quiet_seconds: float = QUIET_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failing = False  # read on the hot path: one attribute, no call
        self._events = events
        self._function = function
        self._remind_seconds = remind_seconds
        self._quiet_seconds = quiet_seconds
        self._clock = clock
        self._bursts: dict[str, _Burst] = {}
        self._misconfigured: dict[str, _Burst] = {}  # hint -> its faults, named once

    def failed(self, operation: str, error: BaseException) -> None:
        """Note one fault in *operation* (the caller computes anyway)."""
        if isinstance(error, UnsentError):  # the fault that spent the call's time is the one to log
            return
        now = self._clock()
        hint = _hint(operation, error)
        if hint is not None:  # a set-up that is wrong stays wrong: named once, then reminded
            self._set_up(hint, operation, error, now)
            return
        burst = self._bursts.get(operation)
        if burst is None:
            self._bursts[operation] = _Burst(now)
            self.failing = True
            _log.error(
                self._events.first,
                function=self._function,
                operation=operation,
                error=said(error),
                exc_info=error,
            )
            return
        burst.faults += 1
        burst.last = now
        if now - burst.logged_at >= self._remind_seconds:
            burst.logged_at = now
            _log.error(
                self._events.reminder,
                function=self._function,
                operation=operation,
                error=said(error),
                failed_operations=burst.faults,
            )

    def _set_up(self, hint: str, operation: str, error: BaseException, now: float) -> None:
        """A fault that says the set-up is wrong (a cluster reached through a plain client, a replica
        written to): logged once for this function, with what to do, whatever succeeds meanwhile."""
        named = self._misconfigured.get(hint)
        if named is None:
            self._misconfigured[hint] = _Burst(now)
            _log.error(
                self._events.first, function=self._function, operation=operation, error=said(error), hint=hint
            )
            return
        named.faults += 1
        if now - named.logged_at >= self._remind_seconds:
            named.logged_at = now
            _log.error(
                self._events.reminder,
                function=self._function,
                operation=operation,
                error=said(error),
                hint=hint,
                failed_operations=named.faults,
            )

    def recovered(self, operation: str) -> None:
        """Note a success of *operation*; ends its burst once it has had no fault for ``quiet_seconds``."""
        if self.failing:
            burst = self._bursts.get(operation)
            if burst is not None and self._clock() - burst.last >= self._quiet_seconds:
                del self._bursts[operation]
                _log.info(
                    self._events.end,
                    function=self._function,
                    operation=operation,
                    failed_operations=burst.faults,
                )
                self.failing = bool(self._bursts)


class _Burst:
    __slots__ = ("faults", "last", "logged_at")

    def __init__(self, now: float) -> None:
        self.faults, self.logged_at, self.last = 1, now, now


class UnsentError(TimeoutError):
    """A command not sent: an earlier command of the same call spent its time (and is the
    fault logged)."""


SAID_CHARACTERS = 500
"""How much of an error's message a log line holds: a message may quote what anyone who can
write to the cache server wrote (a 5 MB payload), and a log line must stay one line."""


def said(error: BaseException) -> str:
    """The error as a log line says it: its class and its own message (at most
    ``SAID_CHARACTERS`` of it)."""
    text = str(error)
    if len(text) > SAID_CHARACTERS:
        text = f"{text[:SAID_CHARACTERS]}... ({len(text) - SAID_CHARACTERS:,} more characters)"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _hint(operation: str, error: BaseException) -> str | None:
    """What a fault says of the set-up, when it says something."""
    if operation == "dumps":  # a function returns values of that type: it will again
        return "return values of a type the cache's serializer keeps, or give it a serializer that keeps them"
    name, text = type(error).__name__, str(error)
    if name in ("MovedError", "AskError", "ClusterCrossSlotError") or "CROSSSLOT" in text:
        return (
            "this is a Redis Cluster: pass a cluster client (redis.asyncio.RedisCluster as cache=, "
            "redis.cluster.RedisCluster as RedisWindow(client=...))"
        )
    if name == "ReadOnlyError" or text.startswith("READONLY"):
        return "pointed at a replica: point it at the master, or pass a Sentinel master_for(...) client"
    return None
