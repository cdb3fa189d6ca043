"""The engine of ``@vix_cached`` over a store shared between processes: Redis, memcached, aiocache.

Entries are envelopes (``vix_ttl._envelope``) under stable wire keys
(``vix_ttl._keys``), signed when they leave the process, aged on wall-clock time
(they cross processes). What a store must do is the ``Backend`` protocol: raw
``get`` / ``set`` / ``delete`` / ``clear`` of envelopes, the key as it stores it (what a
signature covers), its lease commands and how its commands are run (``Commands``).
The algorithm is here, once, for every such store:

- concurrent readers of a key in one process share one read (``SharedReads``);
- an entry is served while fresh, past it within an allowance, never when it is
  older than a value this process has seen (``vix_ttl._monotonic``);
- a computation is shared across every process through a lease (``vix_ttl._lease``);
- every command of a call counts against one timeout (``vix_ttl._budget``).

Backends: ``vix_ttl._aiocache_store`` (aiocache's memory, Redis and memcached) and
``vix_ttl._redis_store`` (redis-py's own clients: Redis, Cluster, Sentinel), each
found through the ``vix_ttl.stores`` entry points: the core never imports them.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple, Protocol

from vix_ttl._budget import Budget, Commands
from vix_ttl._coalesce import AsyncFlights, SharedReads
from vix_ttl._engine import (
    BYPASS,
    ERROR,
    FROM_ANOTHER_PROCESS,
    HIT,
    MISS,
    REJECTED,
    STALE,
    Engine,
    Options,
    Raised,
    fresh,
)
from vix_ttl._envelope import GONE, Header, open_envelope, seal, seal_local
from vix_ttl._faults import REJECTED as REJECTED_EVENTS
from vix_ttl._faults import UNSTORABLE, FaultLog
from vix_ttl._keys import digest, key_prefix, wire_key
from vix_ttl._lease import NOTHING, LeaseStore, single_flight
from vix_ttl._monotonic import AHEAD_SECONDS, Newest
from vix_ttl._signing import Signer
from vix_ttl._stale import Stale, early_refresh_due
from vix_ttl.status import VixStatus

__all__ = ["Backend", "Payload", "RejectedEntryError", "SharedEngine", "needs_secret"]

LEARNING_KEEP_SECONDS = 60.0
"""Under a learning policy, how long the backend keeps an entry past its TTL: its value is
what the next recomputation is compared with."""


class RejectedEntryError(Exception):
    """Why an entry read from a shared store was not served (logged, never raised to callers)."""


class Payload(NamedTuple):
    """How a store turns values into the payload of an envelope, and back."""

    dumps: Callable[[Any], Any]
    loads: Callable[[Any], Any]
    keeps_types: bool
    """It gives back what it was given (else a value that would come back otherwise is not stored)."""
    runs_code: bool
    """Decoding may run code the entry's writer chose: entries must be signed."""
    name: str
    """The serializer's class, in error messages."""
    signer: Signer | None = None
    """The store's own signing (aiocache's ``VixSerializer``), when ``secret=`` is not given."""


class _Found(NamedTuple):
    """An entry read and decoded: its value, when it was stored, its age, fresh TTL and computation time."""

    value: Any
    stored_at: float
    age: float
    fresh_for: float
    delta: float


class Backend(Protocol):
    """A shared store, as ``SharedEngine`` uses it: raw commands on envelopes.

    Each command may raise: the engine fails open (the call computes) and logs it.
    """

    name: str
    """What the store is, in error messages."""
    in_process: bool
    """Entries never leave this process (aiocache's memory): nobody else writes them, no signature."""
    commands: Commands
    """How this store's commands are run: a call's timeout, its connections."""
    payload: Payload
    leases: LeaseStore

    def stored_key(self, key: Any) -> bytes:
        """*key* as the server holds it (a namespace first): what a signature covers."""

    def tomb_key(self, key: Any) -> Any:
        """The key of *key*'s tombstone: read with it, in one command."""

    async def get(self, key: Any) -> tuple[Any, Any]:
        """The raw envelope under *key* and *key*'s raw tombstone (each None when absent)."""

    async def set(self, key: Any, envelope: Any, ttl: float) -> None:
        """Store *envelope* under *key* for *ttl* > 0 seconds (``inf``: no expiry)."""

    async def delete(self, key: Any) -> bool:
        """Delete *key*; whether it was there."""

    async def bury(self, key: Any, tombstone: Any, ttl: float) -> bool:
        """Store *tombstone* under ``tomb_key(key)`` for *ttl* seconds, and delete *key*; whether
        it was there. (An in-process store, which nobody else writes to, only deletes it.)"""

    def clear(self, prefix: str, tombstone: Callable[[Any, Any], Any], ttl: float) -> AsyncIterator[None]:
        """Bury every key of this store that starts with *prefix* (as ``stored_key`` writes it)
        under ``tombstone(key, raw)`` (*raw*: the entry it buries), a step at a time: each step
        is a few commands, run within a timeout of its own.

        Raises:
            NotImplementedError: the store cannot list keys (memcached).
        """


class SharedEngine(Engine):
    """``vix_cached`` over a shared store: entries are envelopes, ages are wall-clock."""

    def __init__(self, backend: Backend, cache: Any, options: Options) -> None:
        super().__init__(
            options, clock=options.clock or time.time, flights=AsyncFlights() if options.coalesce else None
        )
        self.cache = cache
        self._store = backend
        self._namespace = options.namespace
        self._args_are_key = False  # the wire key is always built
        payload = backend.payload
        signer = options.signer or payload.signer
        if backend.in_process:
            signer = None  # nobody else writes to this process's memory
        elif signer is None and payload.runs_code:
            raise needs_secret(f"vix_cached({self.name})", payload.name)
        self._signer = signer
        self._dumps, self._loads = payload.dumps, payload.loads
        self._check_round_trip = not payload.keeps_types
        self._commands = backend.commands
        self._rejections = FaultLog(self.name, events=REJECTED_EVENTS, clock=self._clock)
        self._unstorable = FaultLog(self.name, events=UNSTORABLE, clock=self._clock)
        self._wire_key: Callable[[tuple[Any, ...], dict[str, Any]], Any] = self._vix_key
        # The backend keeps an entry past its fresh TTL for as long as any allowance may serve it.
        # A learning policy compares a recomputed value with the one it replaces: kept a while.
        learning = LEARNING_KEEP_SECONDS if self._learn is not None else 0.0
        self._keep_longer = max(self._swr.largest, self._sie.largest, learning)
        self._reads = SharedReads()
        # An entry older than a value this process served or wrote for its key (written late
        # by a slower process, or replayed) is never served.
        self._newest = Newest()

    def use_keys(self, build: Callable[[tuple[Any, ...], dict[str, Any]], Any]) -> None:
        """Key entries with *build* (arguments -> key) instead of vix_ttl's stable encoding."""
        self._wire_key = build

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The wire key of one call (before the cache's own namespace): a str, or aiocache's own key."""
        return self._wire_key(args, kwargs)

    def _vix_key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        # Always the pair: a call f(x, a=1) and a call f((x,), {"a": 1}) must not meet.
        logical = (args, kwargs) if self._user_key is None else self._user_key(*args, **kwargs)
        try:
            return wire_key(self._namespace, logical)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"vix_cached({self.name}): {exc}") from None

    async def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        # wrapt hands a method bound: it is called with its own arguments, while the callables
        # (status, ttl, key) see self / cls first.
        produce = functools.partial(wrapped, *args, **kwargs)
        if instance is not None:
            args = (instance, *args)
        ttl, key, status, base = self.prepare(args, kwargs)
        signed_key = self._signed(key)
        outcome, stale = BYPASS, None
        # A hung backend costs a call one timeout in all: every command gets what the others left.
        budget = self._commands.budget()
        if ttl:
            started = time.monotonic()
            # Concurrent callers of the key share one read, bounded by what its sender has left,
            # and each is charged once for the time it waited on it: the read spends a copy of the
            # budget, else its sender would pay for it twice, and fail open on a healthy server.
            (raw, tomb), error = await self._reads.run(key, lambda: self._read(key, Budget(budget.left)))
            budget.spend(started)
            if isinstance(error, UnicodeDecodeError):  # the backend could not decode what someone wrote
                outcome = self._reject(f"it is not text in the serializer's encoding: {error}")
            elif error is not None:
                self._faults.failed("get", error)
                outcome = ERROR
            else:
                self._faults.recovered("get")
                outcome, found = self._open(raw, tomb, key, signed_key, ttl)
                if found is not None:
                    stale = Stale(found.value, found.stored_at, found.fresh_for)
                if found is not None and outcome is HIT:
                    self.count(HIT)
                    if self._beta and early_refresh_due(found.fresh_for - found.age, found.delta, self._beta):
                        keep = self._keeper(  # written in the background, bounded
                            args, kwargs, key, signed_key, ttl, base, status, self._commands.budget()
                        )
                        self.refresh_behind_async(key, produce, self.learning(keep, stale, status), ttl)
                    return found.value
        keep = self._keeper(args, kwargs, key, signed_key, ttl, base, status, budget)
        return await self.compute_async(key, outcome, produce, keep, stale, ttl, status, budget)

    async def _read(self, key: Any, budget: Budget) -> tuple[tuple[Any, Any], BaseException | None]:
        """The raw entry of *key* and its raw tombstone, or the fault that kept them from being read."""
        try:
            found = await self._commands.run(lambda: self._store.get(key), budget)
        except Exception as exc:
            return (None, None), exc
        return found, None

    def _open(
        self, raw: Any, tomb: Any, key: Any, signed_key: bytes | None, ttl: float
    ) -> tuple[str, _Found | None]:
        """The outcome of reading *raw* (and *key*'s tombstone *tomb*), and what it held when it
        is fresh, or stale but servable."""
        if raw is None:
            return MISS, None
        opened = open_envelope(raw, signer=self._signer, key=signed_key)
        if opened is None:
            return self._reject("not a valid, signed vix_ttl entry"), None
        header, payload = opened
        now = self._clock()
        if tomb is not None and header.order <= self._buried_at(key, tomb, now):
            return self._reject("it was written before its key was invalidated: copied back"), None
        if not self._newest.see(key, header.order, now):  # noted: this process's next value goes after it
            return STALE, None  # older than a value this process has seen (or placed far ahead): never again
        age, fresh_for = now - header.stored_at, min(header.ttl, ttl)
        if fresh(age, header.ttl, ttl):
            outcome = HIT
        elif (
            0
            <= age
            < fresh_for
            + (self._keep_longer if self._learn is not None else self._keep_longer and self._allowed_now())
        ):
            # Past its fresh TTL: decoded to be served within an allowance of the mode now
            # (the engine judges), or kept for a learning policy to compare with.
            outcome = STALE
        else:
            return STALE, None
        try:
            value = self._loads(payload)
        except Exception as exc:
            return self._reject(f"its payload does not decode: {exc!r}"), None
        self._rejections.recovered("get")
        return outcome, _Found(value, header.stored_at, age, fresh_for, header.delta)

    def _buried_at(self, key: Any, tomb: Any, now: float) -> float:
        """The place of *key*'s tombstone *tomb* among its values (noted: this process's next
        value goes after it); ``-inf`` for one that is not valid, or placed far ahead of *now*
        (it proves nothing)."""
        signed = self._signed(self._store.tomb_key(key))
        opened = open_envelope(tomb, signer=self._signer, key=signed, tombstone=True)
        if opened is None or opened[0].order > now + AHEAD_SECONDS:
            return -math.inf
        self._newest.see(key, opened[0].order, now)
        return opened[0].order

    def _tombstone(self, key: Any, raw: Any) -> Any:
        """A record, signed, that the values of *key* are gone up to the one in *raw* (the entry
        it buries, or None) and up to now: an entry copied back after ``invalidate`` or
        ``cache_clear`` is placed before it, whatever the clock of the process that wrote it."""
        now = self._clock()
        opened = None if raw is None else open_envelope(raw, signer=self._signer, key=self._signed(key))
        if opened is not None:
            self._newest.see(key, opened[0].order, now)
        header = Header(now, self._tomb_ttl, 0.0, GONE, 0.0, self._newest.place(key, now))
        return seal(header, b"", signer=self._signer, key=self._signed(self._store.tomb_key(key)))

    def _signed(self, key: Any) -> bytes | None:
        """What the signature of *key*'s record covers of its key (None: nothing is signed)."""
        return None if self._signer is None else self._store.stored_key(key)

    @property
    def _tomb_ttl(self) -> float:
        """How long a tombstone is kept: as long as an entry it outlives may be (``inf`` for a
        function whose entries may never expire, or whose TTL is a function of the call)."""
        bases = [base for _, base in self._bases.values() if isinstance(base, float)]
        if len(bases) < len(self._bases):
            return math.inf
        return max(*bases, self.breaker.policy.longest_floor) + self._keep_longer

    def _allowed_now(self) -> float:
        """The longest allowance of the breaker's mode now."""
        mode = self.breaker.mode
        return max(self._swr[mode], self._sie[mode])

    def _keeper(  # noqa: PLR0917 - one call's whole context, passed along as it is
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key: Any,
        signed_key: bytes | None,
        ttl: float,
        base: float,
        status: VixStatus,
        budget: Budget,
    ) -> Callable[[Any, float, float, int], Awaitable[bool]]:
        """The write of one call's result (within *budget*)."""
        written = ttl or self.through_ttl(args, kwargs)

        async def keep(value: Any, started: float, ended: float, finished: int) -> bool:
            # This value is served: whether or not it can be stored, nothing older is served after it.
            place = self._newest.place(key, self._clock())
            kept = written if self._entry_ttl is None else self._entry_ttl(value, written)
            if not kept:  # nothing to keep: the entry it replaces goes
                return await self._delete(key, budget)
            header = Header(ended, kept, base, status.value, max(0.0, ended - started), place)
            return await self._write(key, signed_key, value, header, budget)

        return keep

    def shared(
        self, key: Any, run: Callable[[], Awaitable[tuple[Any, Any]]], ttl: float, budget: Budget | None
    ) -> Callable[[], Awaitable[tuple[Any, Any]]]:
        """One computation per key across every process sharing the store: a lease in the store.

        A waiting process receives the holder's entry: fresh for *ttl*, or on a bypass
        (*ttl* 0, the value written through), one computed since it began to wait,
        give or take one computation, as in-process coalescing gives.
        """
        if self._flights is None:  # coalesce=False: every caller computes, in every process
            return run
        budget = self._commands.budget() if budget is None else budget
        lease = "vix_ttl:lease" + digest(str(key))  # never an entry's key, always a memcached key
        signed_key = self._signed(key)
        since = self._clock()

        async def look(within: Budget | None) -> Any:
            raw, tomb = await self._commands.run(lambda: self._store.get(key), within)
            outcome, found = self._open(raw, tomb, key, signed_key, ttl or math.inf)
            # A bypass receives a value computed since it began to wait; any other call, a fresh one.
            if found is None or (outcome is not HIT if ttl else found.stored_at < since):
                return NOTHING
            return found.value

        async def leased() -> tuple[Any, Any]:
            faults: list[BaseException] = []

            def fault(error: BaseException) -> None:
                faults.append(error)
                self._faults.failed("lease", error)

            value, stored = await single_flight(
                self._store.leases, lease, look, run, _is_failure, budget, fault, look_again=bool(ttl)
            )
            if not faults:
                self._faults.recovered("lease")
            return (value, FROM_ANOTHER_PROCESS) if stored is None else (value, stored)

        return leased

    def _reject(self, reason: str) -> str:
        self._rejections.failed("get", RejectedEntryError(reason))
        return REJECTED

    async def _write(
        self, key: str, signed_key: bytes | None, value: Any, header: Header, budget: Budget
    ) -> bool:
        """Store *value* in its envelope within *budget*; False if it was not stored."""
        try:
            payload = self._dumps(value)
            if self._check_round_trip and not _same(self._loads(payload), value):
                raise TypeError(
                    f"the cache's serializer gives back another value than {type(value).__name__} "
                    f"{_short(value)} (JSON turns tuples into lists and int keys into str): return what "
                    f"it keeps, or use a serializer that keeps types (PickleSerializer, with a secret)"
                )
        except Exception as exc:
            self._unstorable.failed("dumps", exc)
            await self._delete(key, budget)  # the entry it replaces must not be served in its place
            return False
        self._unstorable.recovered("dumps")
        if self._store.in_process:
            envelope = seal_local(header, payload)
        else:
            envelope = seal(header, payload, signer=self._signer, key=signed_key)
        kept = header.ttl + self._keep_longer  # served stale meanwhile
        try:
            await self._commands.run(lambda: self._store.set(key, envelope, kept), budget)
        except Exception as exc:
            self._faults.failed("set", exc)
            return False
        self._faults.recovered("set")
        return True

    async def _delete(self, key: Any, budget: Budget | None) -> bool:
        """Delete *key*'s entry within *budget*; False if the backend failed."""
        try:
            await self._commands.run(lambda: self._store.delete(key), budget)
        except Exception as exc:
            self._faults.failed("delete", exc)
            return False
        self._faults.recovered("delete")
        return True

    async def cache_clear(self) -> None:
        """Delete this function's entries (memcached cannot list keys: ``NotImplementedError``)."""
        prefix = self._store.stored_key(key_prefix(self._namespace)).decode()
        steps = aiter(self._store.clear(prefix, self._tombstone, self._tomb_ttl))
        try:  # a step at a time, each within a timeout: a namespace of any size is cleared whole
            while await self._commands.run(lambda: anext(steps, False), None) is not False:
                pass
        except NotImplementedError:
            raise
        except Exception as exc:  # fail open: the entries expire on their own
            self._faults.failed("clear", exc)
        self._reset_counts()

    async def invalidate(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        key = self.key(args, kwargs)
        budget = self._commands.budget()
        try:
            # The entry it buries first: the tombstone goes after it, and after the tombstone before.
            raw, tomb = await self._commands.run(lambda: self._store.get(key), budget)
            if tomb is not None:
                self._buried_at(key, tomb, self._clock())
            tombstone = self._tombstone(key, raw)
            return bool(
                await self._commands.run(lambda: self._store.bury(key, tombstone, self._tomb_ttl), budget)
            )
        except Exception as exc:  # fail open: nothing was dropped that could be served after its TTL
            self._faults.failed("delete", exc)
            return False


def _is_failure(result: Any) -> bool:
    return result.__class__ is Raised


def needs_secret(owner: str, name: str) -> ValueError:
    """The error of a serializer (class *name*) that may run code, used without a secret."""
    return ValueError(
        f"{owner}: {name} may run code when it decodes an entry (unpickling does), and anyone who "
        f"can write to the cache server could make it run theirs; only aiocache's NullSerializer, "
        f"StringSerializer, JsonSerializer, MsgPackSerializer and vix_ttl's own are known not to. "
        f"Pass secret= (entries are then signed, and unsigned or forged ones are never decoded), or, "
        f"if {name} never runs code, say so with the class attribute runs_code = False"
    )


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down: what a hit must give back."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        typed_keys = {(type(k), k) for k in a} == {(type(k), k) for k in b}
        return typed_keys and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
