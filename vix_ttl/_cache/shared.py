"""The store of ``@vix_cached`` shared between processes (Redis, memcached, aiocache): the rules
every such store follows, over its ``Backend``.

Entries are envelopes (``vix_ttl._envelope``) under stable wire keys
(``vix_ttl._keys``), signed when they leave the process, aged on wall-clock time
(they cross processes). What a store must do is the ``Backend`` protocol: raw
``get`` / ``set`` / ``delete`` / ``clear`` of envelopes, the key as it stores it (what a
signature covers), its lease commands and how its commands are run (``Commands``).
What ``SharedStore`` adds to a backend, once, for every one of them:

- concurrent readers of a key in one process share one read (``SharedReads``);
- an entry is served while fresh, past it within an allowance, never when it is
  older than a value this process has seen (``vix_ttl._monotonic``);
- a computation is shared across every process through a lease (``vix_ttl._lease``);
- every command of a call counts against one timeout (``vix_ttl._budget``).

Backends: ``vix_ttl._stores.aiocache`` (aiocache's memory, Redis and memcached) and
``vix_ttl._stores.redis`` (redis-py's own clients: Redis, Cluster, Sentinel), each
found through the ``vix_ttl.stores`` entry points: the core never imports them.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, NamedTuple, Protocol

from vix_ttl._budget import Budget, Commands
from vix_ttl._cache.api import FROM_ANOTHER_PROCESS, Found, Outcome, Raised, Written, fresh
from vix_ttl._cache.options import Function
from vix_ttl._coalesce import SharedReads
from vix_ttl._envelope import GONE, Header, open_envelope, seal, seal_local
from vix_ttl._faults import REJECTED as REJECTED_EVENTS
from vix_ttl._faults import UNSTORABLE, FaultLog
from vix_ttl._keys import digest, key_prefix, wire_key
from vix_ttl._lease import NOTHING, LeaseStore, under_lease
from vix_ttl._monotonic import AHEAD_SECONDS, Newest
from vix_ttl._signing import Signer

HIT, MISS, STALE, ERROR, REJECTED = Outcome.HIT, Outcome.MISS, Outcome.STALE, Outcome.ERROR, Outcome.REJECTED

__all__ = ["Backend", "Payload", "RejectedEntryError", "SharedStore", "needs_secret"]

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


class SharedStore:
    """A ``Store`` over a shared ``Backend``: entries are envelopes, ages are wall-clock."""

    def __init__(self, backend: Backend, cache: Any, function: Function) -> None:
        options = function.options
        self.cache = cache
        self.clock: Callable[[], float] = options.clock or time.time
        self.faults = FaultLog(function.name, clock=self.clock)
        self._function = function
        self._store = backend
        self._namespace = function.namespace
        payload = backend.payload
        signer = options.signer or payload.signer
        if backend.in_process:
            signer = None  # nobody else writes to this process's memory
        elif signer is None and payload.runs_code:
            raise needs_secret(f"vix_cached({function.name})", payload.name)
        self._signer = signer
        self._dumps, self._loads = payload.dumps, payload.loads
        self._check_round_trip = not payload.keeps_types
        self._commands = backend.commands
        self._rejections = FaultLog(function.name, events=REJECTED_EVENTS, clock=self.clock)
        self._unstorable = FaultLog(function.name, events=UNSTORABLE, clock=self.clock)
        self._user_key = options.key
        self._wire_key = options.wire_key
        self._coalesce = options.coalesce
        self._swr, self._sie = options.stale_while_revalidate, options.stale_if_error
        # The backend keeps an entry past its fresh TTL for as long as any allowance may serve it.
        # A learning policy compares a recomputed value with the one it replaces: kept a while.
        self._learns = function.breaker.policy.learns
        learning = LEARNING_KEEP_SECONDS if self._learns else 0.0
        self._keep_longer = max(self._swr.largest, self._sie.largest, learning)
        self._tomb_ttl = self._tombstone_ttl()
        self._reads = SharedReads()
        # An entry older than a value this process served or wrote for its key (written late
        # by a slower process, or replayed) is never served.
        self._newest = Newest()

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The wire key of one call (before the cache's own namespace): a str, or the one
        ``Options.wire_key`` builds (aiocache's own keys)."""
        if self._wire_key is not None:
            return self._wire_key(args, kwargs)
        # Always the pair: a call f(x, a=1) and a call f((x,), {"a": 1}) must not meet.
        if self._user_key is None:
            logical: Any = (args, kwargs)
        else:
            logical = self._function.call("key", self._user_key, args, kwargs)
        try:
            return wire_key(self._namespace, logical)
        except (TypeError, ValueError) as exc:
            raise type(exc)(self._function.error(str(exc))) from None

    def budget(self) -> Budget:
        return self._commands.budget()

    def size(self) -> tuple[int | None, int | None]:
        return None, None  # a server's, shared with others: not this function's to say

    async def read(self, key: Any, ttl: float, budget: Budget | None) -> tuple[Outcome, Found | None]:
        budget = self.budget() if budget is None else budget
        signed_key = self._signed(key)
        started = time.monotonic()
        # Concurrent callers of the key share one read, bounded by what its sender has left,
        # and each is charged once for the time it waited on it: the read spends a copy of the
        # budget, else its sender would pay for it twice, and fail open on a healthy server.
        (raw, tomb), error = await self._reads.run(key, lambda: self._read(key, Budget(budget.left)))
        budget.spend(started)
        if isinstance(error, UnicodeDecodeError):  # the backend could not decode what someone wrote
            return self._reject(f"it is not text in the serializer's encoding: {error}"), None
        if error is not None:
            self.faults.failed("get", error)
            return ERROR, None
        self.faults.recovered("get")
        return self._open(raw, tomb, key, signed_key, ttl)

    async def _read(self, key: Any, budget: Budget) -> tuple[tuple[Any, Any], BaseException | None]:
        """The raw entry of *key* and its raw tombstone, or the fault that kept them from being read."""
        try:
            found = await self._commands.run(lambda: self._store.get(key), budget)
        except Exception as exc:
            return (None, None), exc
        return found, None

    def _open(
        self, raw: Any, tomb: Any, key: Any, signed_key: bytes | None, ttl: float
    ) -> tuple[Outcome, Found | None]:
        """The outcome of reading *raw* (and *key*'s tombstone *tomb*), and what it held when it
        is fresh, or stale but servable."""
        if raw is None:
            return MISS, None
        opened = open_envelope(raw, signer=self._signer, key=signed_key)
        if opened is None:
            return self._reject("not a valid, signed vix_ttl entry"), None
        header, payload = opened
        now = self.clock()
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
            < fresh_for + (self._keep_longer if self._learns else self._keep_longer and self._allowed_now())
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
        return outcome, Found(value, header.stored_at, age, fresh_for, header.delta)

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
        now = self.clock()
        opened = None if raw is None else open_envelope(raw, signer=self._signer, key=self._signed(key))
        if opened is not None:
            self._newest.see(key, opened[0].order, now)
        header = Header(now, self._tomb_ttl, 0.0, GONE, 0.0, self._newest.place(key, now))
        return seal(header, b"", signer=self._signer, key=self._signed(self._store.tomb_key(key)))

    def _signed(self, key: Any) -> bytes | None:
        """What the signature of *key*'s record covers of its key (None: nothing is signed)."""
        return None if self._signer is None else self._store.stored_key(key)

    def _tombstone_ttl(self) -> float:
        """How long a tombstone is kept: as long as an entry it outlives may be (``inf`` for a
        function whose entries may never expire, or whose TTL is a function of the call)."""
        bases = self._function.options.bases.values()
        seconds = [base for _, base in bases if isinstance(base, float)]
        if len(seconds) < len(bases):
            return math.inf
        return max(*seconds, self._function.breaker.policy.longest_floor) + self._keep_longer

    def _allowed_now(self) -> float:
        """The longest allowance of the breaker's mode now."""
        mode = self._function.breaker.mode
        return max(self._swr[mode], self._sie[mode])

    async def write(self, key: Any, value: Any, ttl: float, written: Written, budget: Budget | None) -> bool:
        budget = self.budget() if budget is None else budget
        # This value is served: whether or not it can be stored, nothing older is served after it.
        place = self._newest.place(key, self.clock())
        if not ttl:  # nothing to keep: the entry it replaces goes
            return await self._delete(key, budget)
        header = Header(written.ended, ttl, written.base, written.status, written.delta, place)
        return await self._write(key, self._signed(key), value, header, budget)

    def shared(
        self, key: Any, run: Callable[[], Coroutine[Any, Any, Any]], ttl: float, budget: Budget | None
    ) -> Callable[[], Coroutine[Any, Any, Any]]:
        """One computation per key across every process sharing the store: a lease in the store.

        A waiting process receives the holder's entry: fresh for *ttl*, or on a bypass
        (*ttl* 0, the value written through), one computed since it began to wait,
        give or take one computation, as in-process coalescing gives.
        """
        if not self._coalesce:  # every caller computes, in every process
            return run
        budget = self._commands.budget() if budget is None else budget
        lease = "vix_ttl:lease" + digest(str(key))  # never an entry's key, always a memcached key
        signed_key = self._signed(key)
        since = self.clock()

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
                self.faults.failed("lease", error)

            value, stored = await under_lease(
                self._store.leases, lease, look, run, _is_failure, budget, fault, look_again=bool(ttl)
            )
            if not faults:
                self.faults.recovered("lease")
            return (value, FROM_ANOTHER_PROCESS) if stored is None else (value, stored)

        return leased

    def _reject(self, reason: str) -> Outcome:
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
        return await self._sent("set", lambda: self._store.set(key, envelope, kept), budget)

    async def _delete(self, key: Any, budget: Budget | None) -> bool:
        """Delete *key*'s entry within *budget*; False if the backend failed."""
        return await self._sent("delete", lambda: self._store.delete(key), budget)

    async def _sent(
        self, operation: str, command: Callable[[], Awaitable[Any]], budget: Budget | None
    ) -> bool:
        """Whether *command* (the backend's *operation*) succeeded within *budget*; its faults
        logged once per burst."""
        try:
            await self._commands.run(command, budget)
        except Exception as exc:
            self.faults.failed(operation, exc)
            return False
        self.faults.recovered(operation)
        return True

    async def clear(self) -> None:
        """Bury this function's entries (memcached cannot list keys: ``NotImplementedError``)."""
        prefix = self._store.stored_key(key_prefix(self._namespace)).decode()
        steps = aiter(self._store.clear(prefix, self._tombstone, self._tomb_ttl))
        try:  # a step at a time, each within a timeout: a namespace of any size is cleared whole
            while await self._commands.run(lambda: anext(steps, False), None) is not False:
                pass
        except NotImplementedError:
            raise
        except Exception as exc:  # fail open: the entries expire on their own
            self.faults.failed("clear", exc)

    async def delete(self, key: Any) -> bool:
        """Bury *key*'s entry under a tombstone: a copy of it written back is never served."""
        budget = self._commands.budget()
        try:
            # The entry it buries first: the tombstone goes after it, and after the tombstone before.
            raw, tomb = await self._commands.run(lambda: self._store.get(key), budget)
            if tomb is not None:
                self._buried_at(key, tomb, self.clock())
            tombstone = self._tombstone(key, raw)
            return bool(
                await self._commands.run(lambda: self._store.bury(key, tombstone, self._tomb_ttl), budget)
            )
        except Exception as exc:  # fail open: nothing was dropped that could be served after its TTL
            self.faults.failed("delete", exc)
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
