"""The aiocache store of ``@vix_cached``: memory, Redis and memcached, through aiocache 0.12.

Entries are envelopes (``vix_ttl._envelope``) under stable wire keys
(``vix_ttl._keys``), signed on shared backends, aged on wall-clock time (they
cross processes). Found by ``vix_cached`` through the ``vix_ttl.stores`` entry
point ``aiocache``: the core never imports this module. It imports aiocache:
the edge of vix_ttl.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

from aiocache.backends.memcached import MemcachedBackend
from aiocache.backends.memory import SimpleMemoryBackend
from aiocache.backends.redis import RedisBackend
from aiocache.base import BaseCache
from aiocache.serializers import NullSerializer, PickleSerializer

from vix_ttl._aiocache_backend import (
    Leases,
    RejectedEntryError,
    backend_ttl,
    connection_slots,
    identity,
    key_bytes,
    pickle_needs_secret,
    runs_code,
)
from vix_ttl._budget import Budget
from vix_ttl._checks import check_seconds
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
from vix_ttl._envelope import Header, open_envelope, seal, seal_local
from vix_ttl._faults import REJECTED as REJECTED_EVENTS
from vix_ttl._faults import UNSTORABLE, FaultLog
from vix_ttl._keys import digest, key_prefix, wire_key
from vix_ttl._lease import NOTHING, single_flight
from vix_ttl._monotonic import Newest
from vix_ttl._stale import Stale, early_refresh_due
from vix_ttl.aiocache import VixSerializer
from vix_ttl.status import VixStatus

__all__ = ["ADAPTER", "AiocacheEngine"]

_T = TypeVar("_T")

LEARNING_KEEP_SECONDS = 60.0
"""Under a learning policy, how long the backend keeps an entry past its TTL: its value is
what the next recomputation is compared with."""


class _Found(NamedTuple):
    """An entry read and decoded: its value, when it was stored, its age, fresh TTL and computation time."""

    value: Any
    stored_at: float
    age: float
    fresh_for: float
    delta: float


class _Adapter:
    """The ``vix_ttl.stores`` entry point: aiocache caches, for coroutine functions."""

    def accepts(self, cache: object) -> bool:
        return isinstance(cache, BaseCache)

    def engine(self, cache: Any, options: Options, *, is_async: bool) -> Engine:
        if not is_async:
            raise TypeError(
                f"vix_cached({options.name}): an aiocache cache serves async functions only; "
                f"use cache=None or a cachetools cache for a sync function"
            )
        return AiocacheEngine(cache, options)


ADAPTER = _Adapter()


class AiocacheEngine(Engine):
    """``vix_cached`` over an aiocache cache: entries are envelopes, ages are wall-clock."""

    def __init__(self, cache: BaseCache, options: Options) -> None:
        super().__init__(
            options, clock=options.clock or time.time, flights=AsyncFlights() if options.coalesce else None
        )
        self.cache = cache
        self._namespace = options.namespace
        signer = options.signer
        self._args_are_key = False  # the wire key is always built
        wrapper = cache.serializer if isinstance(cache.serializer, VixSerializer) else None
        inner = cache.serializer if wrapper is None else wrapper.inner
        self._in_process = isinstance(cache, SimpleMemoryBackend)
        if signer is None and wrapper is not None:
            signer = wrapper.signer
        if self._in_process:
            signer = None  # nobody else writes to this process's memory
        elif signer is None and runs_code(inner):
            raise pickle_needs_secret(f"vix_cached({self.name})")
        self._signer = signer
        self._dumps, self._loads = inner.dumps, inner.loads
        # A value the serializer hands back changed ((1, 2) -> [1, 2] in JSON) would be a
        # wrong value on every hit: such values are not stored. Pickle keeps types, and
        # NullSerializer keeps the object itself.
        self._check_round_trip = not isinstance(inner, PickleSerializer | NullSerializer)
        # aiocache wraps every command in asyncio.wait_for (a task per call);
        # we pass timeout=0 and bound the wait ourselves, for network backends only.
        self._timeout = None if self._in_process else _checked_timeout(cache, self.name)
        # aiomcache hands a connection back to its pool when a command on it is
        # cancelled, with the reply still coming: the next command would read it.
        # So a memcached command that takes too long is left to finish on its own.
        self._detach = isinstance(cache, MemcachedBackend)
        self._detached: set[asyncio.Future[Any]] = set()
        self._slots = connection_slots(cache)
        self._rejections = FaultLog(self.name, events=REJECTED_EVENTS)
        self._unstorable = FaultLog(self.name, events=UNSTORABLE)
        self._wire_key: Callable[[tuple[Any, ...], dict[str, Any]], Any] = self._vix_key
        # The backend keeps an entry past its fresh TTL for as long as any allowance may serve it.
        # A learning policy compares a recomputed value with the one it replaces: kept a while.
        learning = LEARNING_KEEP_SECONDS if self._learn is not None else 0.0
        self._keep_longer = max(self._swr.largest, self._sie.largest, learning)
        self._reads = SharedReads()
        self._leases = Leases(cache, self._bounded)
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
        if instance is not None:
            args = (instance, *args)
        ttl, key, status, base = self.prepare(args, kwargs)
        signed_key = None if self._signer is None else key_bytes(self.cache, key)
        outcome, stale = BYPASS, None
        # A hung backend costs a call one timeout in all: every command gets what the others left.
        budget = Budget(self._timeout)
        if ttl:
            started = time.monotonic()
            # Concurrent callers of the key share one read.
            raw, error = await self._reads.run(key, lambda: self._read(key, budget))
            budget.spend(started)
            if isinstance(error, UnicodeDecodeError):  # the backend could not decode what someone wrote
                outcome = self._reject(f"it is not text in the serializer's encoding: {error}")
            elif error is not None:
                self._faults.failed("get", error)
                outcome = ERROR
            else:
                self._faults.recovered()
                outcome, found = self._open(raw, key, signed_key, ttl)
                if found is not None:
                    stale = Stale(found.value, found.stored_at, found.fresh_for)
                if found is not None and outcome is HIT:
                    self.count(HIT)
                    if self._beta and early_refresh_due(found.fresh_for - found.age, found.delta, self._beta):
                        produce, keep = self._producer(  # written in the background, bounded
                            wrapped, args, kwargs, key, signed_key, ttl, base, status, Budget(self._timeout)
                        )
                        self.refresh_behind_async(key, produce, self.learning(keep, stale, status), ttl)
                    return found.value
        produce, keep = self._producer(wrapped, args, kwargs, key, signed_key, ttl, base, status, budget)
        return await self.compute_async(key, outcome, produce, keep, stale, ttl, status, budget)

    async def _read(self, key: Any, budget: Budget) -> tuple[Any, BaseException | None]:
        """The raw entry of *key*, or the fault that kept it from being read."""
        try:
            raw = await self._bounded(lambda: self.cache.get(key, loads_fn=identity, timeout=0), budget)
        except Exception as exc:
            return None, exc
        return raw, None

    def _open(self, raw: Any, key: Any, signed_key: bytes | None, ttl: float) -> tuple[str, _Found | None]:
        """The outcome of reading *raw*, and what it held when it is fresh, or stale but servable."""
        if raw is None:
            return MISS, None
        opened = open_envelope(raw, signer=self._signer, key=signed_key)
        if opened is None:
            return self._reject("not a valid, signed vix_ttl entry"), None
        header, payload = opened
        if self._newest.older(key, header.order):
            return STALE, None  # older than a value this process has seen: never again
        self._newest.note(key, header.order)  # this process's next value of the key goes after it
        age, fresh_for = self._clock() - header.stored_at, min(header.ttl, ttl)
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
        self._rejections.recovered()
        return outcome, _Found(value, header.stored_at, age, fresh_for, header.delta)

    def _allowed_now(self) -> float:
        """The longest allowance of the breaker's mode now."""
        mode = self.breaker.mode
        return max(self._swr[mode], self._sie[mode])

    def _producer(  # noqa: PLR0917 - one call's whole context, passed along as it is
        self,
        wrapped: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key: Any,
        signed_key: bytes | None,
        ttl: float,
        base: float,
        status: VixStatus,
        budget: Budget,
    ) -> tuple[Callable[[], Awaitable[Any]], Callable[[Any, float, float, int], Awaitable[bool]]]:
        """The computation of one call, and the write of its result (within *budget*)."""
        written = ttl or self.through_ttl(args, kwargs)

        def produce() -> Awaitable[Any]:
            return wrapped(*args, **kwargs)  # type: ignore[no-any-return]

        async def keep(value: Any, started: float, ended: float, finished: int) -> bool:
            # This value is served: whether or not it can be stored, nothing older is served after it.
            place = self._newest.place(key, self._clock())
            kept = written if self._entry_ttl is None else self._entry_ttl(value, written)
            if not kept:  # nothing to keep: the entry it replaces goes
                return await self._delete(key, budget)
            header = Header(ended, kept, base, status.value, max(0.0, ended - started), place)
            return await self._write(key, signed_key, value, header, budget)

        return produce, keep

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
        budget = Budget(self._timeout) if budget is None else budget
        lease = "vix_ttl:lease" + digest(str(key))  # never an entry's key, always a memcached key
        signed_key = None if self._signer is None else key_bytes(self.cache, key)
        since = self._clock()

        async def look(within: Budget | None) -> Any:
            raw = await self._bounded(lambda: self.cache.get(key, loads_fn=identity, timeout=0), within)
            outcome, found = self._open(raw, key, signed_key, ttl or math.inf)
            # A bypass receives a value computed since it began to wait; any other call, a fresh one.
            if found is None or (outcome is not HIT if ttl else found.stored_at < since):
                return NOTHING
            return found.value

        async def leased() -> tuple[Any, Any]:
            value, stored = await single_flight(
                self._leases,
                lease,
                look,
                run,
                lambda result: result.__class__ is Raised,
                budget,
                lambda error: self._faults.failed("lease", error),
                look_again=bool(ttl),
            )
            return (value, FROM_ANOTHER_PROCESS) if stored is None else (value, stored)

        return leased

    async def _bounded(self, command: Callable[[], Awaitable[_T]], budget: Budget | None) -> _T:
        """Run a backend *command* within *budget* (None: one timeout of its own), its time spent.

        A connection pool that is full is waited for within the same budget, never
        turned into a failure (redis-py's pool raises at its size instead of waiting).
        """
        budget = Budget(self._timeout) if budget is None else budget
        if budget.left is None:  # unbounded, in-process: nothing to time (nor a task to time it in)
            return await command()
        if budget.left <= 0:
            raise TimeoutError("the call's timeout is spent: not sending the command")
        started = time.monotonic()
        try:
            async with asyncio.timeout(budget.left):
                if self._slots is None:
                    return await self._sent(command)
                async with self._slots.get():
                    return await self._sent(command)
        finally:
            budget.spend(started)

    async def _sent(self, command: Callable[[], Awaitable[_T]]) -> _T:
        if not self._detach:
            return await command()
        # aiomcache hands a connection back to its pool when a command on it is cancelled,
        # with the reply still coming: the next command would read it. So a memcached
        # command that takes too long is left to finish on its own.
        task = asyncio.ensure_future(command())
        self._detached.add(task)  # a strong reference until it ends, late or not
        task.add_done_callback(self._land)
        return await asyncio.shield(task)

    def _land(self, task: asyncio.Future[Any]) -> None:
        self._detached.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a late failure was already counted when it timed out

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
        self._unstorable.recovered()
        if self._in_process:
            envelope = seal_local(header, payload)
        else:
            envelope = seal(header, payload, signer=self._signer, key=signed_key)
        set_ttl = backend_ttl(self.cache, header.ttl + self._keep_longer)  # served stale meanwhile
        try:
            await self._bounded(
                lambda: self.cache.set(key, envelope, ttl=set_ttl, dumps_fn=identity, timeout=0), budget
            )
        except Exception as exc:
            self._faults.failed("set", exc)
            return False
        return True

    async def _delete(self, key: Any, budget: Budget | None) -> bool:
        """Delete *key*'s entry within *budget*; False if the backend failed."""
        try:
            await self._bounded(lambda: self.cache.delete(key, timeout=0), budget)
        except Exception as exc:
            self._faults.failed("delete", exc)
            return False
        return True

    async def cache_clear(self) -> None:
        """Delete this function's entries (memory and Redis; memcached cannot list keys)."""
        if isinstance(self.cache, MemcachedBackend):
            raise NotImplementedError(
                "memcached cannot delete entries by prefix: use invalidate(...) per key, "
                "or let the entries expire (their TTLs are short by design)"
            )
        prefix = key_bytes(self.cache, key_prefix(self._namespace)).decode()
        try:
            if isinstance(self.cache, RedisBackend):
                await self._bounded(lambda: self._clear_redis(prefix), None)
            else:
                await self.cache.clear(namespace=prefix)
        except Exception as exc:  # fail open: the entries expire on their own
            self._faults.failed("clear", exc)
        self._reset_counts()

    async def _clear_redis(self, prefix: str) -> None:
        # aiocache's clear(namespace) matches "<namespace>:*"; ours is a plain prefix.
        # key_prefix never holds a glob character, so the pattern is the prefix itself.
        client = self.cache.client
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)

    async def invalidate(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        key = self.key(args, kwargs)
        try:
            return bool(await self._bounded(lambda: self.cache.delete(key, timeout=0), None))
        except Exception as exc:  # fail open: nothing was dropped that could be served after its TTL
            self._faults.failed("delete", exc)
            return False


def _checked_timeout(cache: BaseCache, name: str) -> float | None:
    """The cache's ``timeout`` as vix_ttl's budget per call (None or 0: unbounded)."""
    if not cache.timeout:
        return None
    try:
        return check_seconds("the cache's timeout", cache.timeout, positive=True)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"vix_cached({name}): {exc} (None or 0: no timeout)") from None


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
