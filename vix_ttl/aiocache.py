"""aiocache (0.12.x) integration: adaptive TTLs for existing aiocache users.

- ``VixSerializer`` wraps any aiocache serializer in an envelope (status,
  stored-at, base and decided TTL, signature) and turns entries too old for
  the breaker's decision *now* into misses.
- ``VixPlugin`` hands the ``ttl`` and the key given to ``set`` / ``get`` to
  the serializer (the key is signed with the entry) and makes the backend keep
  each entry for its decided TTL.
- ``cached`` is aiocache's decorator with adaptive TTLs: ``vix_cached``'s
  decisions, under aiocache's own keys.

All three work from an aiocache config dict by dotted path. aiocache 1.0 (its
development branch) drops config dicts; this module supports the 0.12 line.

This module imports aiocache: it is the edge of vix_ttl, never its core.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import importlib
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar, cast

from aiocache.backends.memcached import MemcachedBackend
from aiocache.backends.memory import SimpleMemoryBackend
from aiocache.backends.redis import RedisBackend
from aiocache.base import SENTINEL, BaseCache
from aiocache.decorators import cached as _aiocache_cached
from aiocache.plugins import BasePlugin
from aiocache.serializers import BaseSerializer, JsonSerializer, NullSerializer, PickleSerializer

from vix_ttl._checks import check_clock, check_seconds, check_ttl
from vix_ttl._envelope import Header, fresh, open_envelope, seal, seal_local
from vix_ttl._faults import REJECTED, UNSTORABLE, FaultLog
from vix_ttl._keys import key_prefix, wire_key
from vix_ttl._signing import Secret, Signer, signer_of
from vix_ttl.breaker import VIXCircuitBreaker
from vix_ttl.decorator import (
    _BYPASS,
    _ERROR,
    _HIT,
    _MISS,
    _REJECTED,
    _STALE,
    _Call,
    vix_cached,
)
from vix_ttl.registry import get_breaker
from vix_ttl.status import VixStatus

__all__ = ["MEMCACHED_MAX_TTL", "VixPlugin", "VixSerializer", "backend_ttl", "cached"]

_T = TypeVar("_T")

MEMCACHED_MAX_TTL = 30 * 24 * 3600
"""memcached reads a larger expiry as an absolute Unix time."""

_MEMCACHED_MAX_KEY = 250  # bytes; and no spaces or control characters

# What VixPlugin's pre hooks hand to VixSerializer for one command, and what dumps
# decided for the post hooks. Context variables: one per task, and aiocache runs a
# command's hooks and its dumps/loads in one task.
_handover: contextvars.ContextVar[_Handover | None] = contextvars.ContextVar("vix_ttl_handover", default=None)
_decided: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("vix_ttl_decided", default=None)


class _Handover:
    """One command's keys (as the backend stores them) and TTLs, from VixPlugin to VixSerializer.

    Each dumps or loads takes one key; the last one taken ends the handover, so
    nothing lingers in the task for a later command (a failed command's post hook
    never runs). A handover never weakens a check: an in-process entry is told
    apart by its type, not by what was handed over.
    """

    __slots__ = ("cache_ttl", "in_process", "keys", "set_ttl")

    def __init__(
        self,
        keys: list[bytes],
        *,
        in_process: bool,
        set_ttl: float | None = None,
        cache_ttl: float | None = None,
    ) -> None:
        self.keys = keys
        self.in_process = in_process
        self.set_ttl = set_ttl
        self.cache_ttl = cache_ttl

    @staticmethod
    def take() -> tuple[_Handover | None, bytes | None]:
        """The current handover and the key of the entry being (de)serialized now."""
        handover = _handover.get()
        if handover is None:
            return None, None
        key = handover.keys.pop(0) if handover.keys else None
        if not handover.keys:
            _handover.set(None)
        return handover, key


class RejectedEntryError(Exception):
    """Why an entry read from a shared store was not served (logged, never raised to callers)."""


def backend_ttl(cache: BaseCache, ttl: float) -> float | int | None:
    """The expiry to give *cache*'s backend for an entry decided to live *ttl* > 0 seconds.

    ``None`` for an infinite TTL (no expiry). A TTL of 0 must never get here:
    aiocache's memory and memcached backends read 0 as "never expire", and
    Redis rejects it.
    """
    if ttl == math.inf:
        return None
    if isinstance(cache, MemcachedBackend):
        return min(math.ceil(ttl), MEMCACHED_MAX_TTL)  # whole seconds, rounded up
    if isinstance(cache, RedisBackend):
        return max(float(ttl), 0.001)  # a float goes out as PSETEX milliseconds; 0 ms is refused
    return float(ttl)


def _expire_seconds(cache: BaseCache, ttl: float) -> float | int:
    """``backend_ttl`` for ``expire``, which Redis and memcached take in whole seconds."""
    seconds = backend_ttl(cache, ttl)
    assert seconds is not None  # callers never expire an entry that lives forever
    return seconds if isinstance(cache, SimpleMemoryBackend) else math.ceil(seconds)


def _identity(value: Any) -> Any:
    return value


def _runs_code(serializer: BaseSerializer) -> bool:
    """Whether decoding with *serializer* can run code an entry's writer chose."""
    return isinstance(serializer, PickleSerializer)


def _pickle_needs_secret(owner: str) -> ValueError:
    return ValueError(
        f"{owner}: this serializer unpickles, and unpickling an entry runs whatever code its "
        f"writer put in it: anyone who can write to the cache server could run code here. "
        f"Pass secret= (entries are then signed, and unsigned or forged ones are never "
        f"unpickled), or use aiocache's JsonSerializer (the default)"
    )


def _key_bytes(cache: BaseCache, key: str, namespace: str | None = None) -> bytes:
    """The key as the backend stores it (namespace included): what a signature covers."""
    built = cache.build_key(key, namespace)
    return built if isinstance(built, bytes) else str(built).encode()


class AiocacheCall(_Call):
    """``vix_cached`` over an aiocache cache: entries are envelopes, ages are wall-clock."""

    def __init__(self, cache: BaseCache, *, namespace: str, signer: Signer | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache = cache
        self._namespace = namespace
        self._args_are_key = False  # the wire key is always built
        wrapper = cache.serializer if isinstance(cache.serializer, VixSerializer) else None
        inner = cache.serializer if wrapper is None else wrapper.inner
        self._in_process = isinstance(cache, SimpleMemoryBackend)
        if signer is None and wrapper is not None:
            signer = wrapper.signer
        if self._in_process:
            signer = None  # nobody else writes to this process's memory
        elif signer is None and _runs_code(inner):
            raise _pickle_needs_secret(f"vix_cached({self.name})")
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
        self._rejections = FaultLog(self.name, events=REJECTED)
        self._unstorable = FaultLog(self.name, events=UNSTORABLE)
        self._wire_key: Callable[[tuple[Any, ...], dict[str, Any]], str] = self._vix_key

    def use_keys(self, build: Callable[[tuple[Any, ...], dict[str, Any]], str]) -> None:
        """Key entries with *build* (arguments -> key) instead of vix_ttl's stable encoding."""
        self._wire_key = build

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The wire key of one call (before the cache's own namespace)."""
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
        ttl, key, status, base = self._prepare(instance, args, kwargs)
        signed_key = None if self._signer is None else _key_bytes(self.cache, key)
        outcome = _BYPASS
        # A hung backend costs a call one timeout in all: the write gets what the read left.
        budget = self._timeout
        if ttl:
            started = time.monotonic()
            try:
                raw = await self._bounded(self.cache.get(key, loads_fn=_identity, timeout=0), budget)
            except UnicodeDecodeError as exc:  # the backend could not decode what someone wrote
                outcome = self._reject(f"it is not text in the serializer's encoding: {exc}")
            except Exception as exc:
                self._faults.failed("get", exc)
                outcome = _ERROR
            else:
                if self._faults.failing:
                    self._faults.recovered()
                if raw is None:
                    outcome = _MISS
                else:
                    opened = open_envelope(raw, signer=self._signer, key=signed_key)
                    if opened is None:
                        outcome = self._reject("not a valid, signed vix_ttl entry")
                    elif fresh(self._clock() - opened[0].stored_at, opened[0].ttl, ttl):
                        try:
                            value = self._loads(opened[1])
                        except Exception as exc:
                            outcome = self._reject(f"its payload does not decode: {exc!r}")
                        else:
                            if self._rejections.failing:
                                self._rejections.recovered()
                            self._count(_HIT)
                            return value
                    else:
                        outcome = _STALE
            if budget is not None:
                budget -= time.monotonic() - started
        return await self._compute_async(
            key,
            outcome,
            lambda: wrapped(*args, **kwargs),
            lambda value: self._write(
                key, signed_key, value, Header(self._clock(), ttl, base, status.value), budget
            ),
        )

    async def _bounded(self, command: Awaitable[_T], budget: float | None) -> _T:
        """Await a backend *command* for at most *budget* seconds (None: no bound)."""
        if not self._detach:
            async with asyncio.timeout(budget):
                return await command
        task = asyncio.ensure_future(command)
        self._detached.add(task)  # a strong reference until it ends, late or not
        task.add_done_callback(self._land)
        async with asyncio.timeout(budget):
            return await asyncio.shield(task)

    def _land(self, task: asyncio.Future[Any]) -> None:
        self._detached.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a late failure was already counted when it timed out

    def _reject(self, reason: str) -> str:
        self._rejections.failed("get", RejectedEntryError(reason))
        return _REJECTED

    async def _write(
        self, key: str, signed_key: bytes | None, value: Any, header: Header, budget: float | None
    ) -> bool:
        """Store *value* in its envelope within *budget* seconds; False if it was not stored."""
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
            return False
        if self._unstorable.failing:
            self._unstorable.recovered()
        if self._in_process:
            envelope = seal_local(header, payload)
        else:
            envelope = seal(header, payload, signer=self._signer, key=signed_key)
        try:
            if budget is not None and budget <= 0:
                raise TimeoutError("the read took the call's whole timeout: not writing")
            set_ttl = backend_ttl(self.cache, header.ttl)
            await self._bounded(
                self.cache.set(key, envelope, ttl=set_ttl, dumps_fn=_identity, timeout=0), budget
            )
        except Exception as exc:
            self._faults.failed("set", exc)
            return False
        return True

    async def cache_clear(self) -> None:
        """Delete this function's entries (memory and Redis; memcached cannot list keys)."""
        if isinstance(self.cache, MemcachedBackend):
            raise NotImplementedError(
                "memcached cannot delete entries by prefix: use invalidate(...) per key, "
                "or let the entries expire (their TTLs are short by design)"
            )
        prefix = _key_bytes(self.cache, key_prefix(self._namespace)).decode()
        try:
            if isinstance(self.cache, RedisBackend):
                await self._bounded(self._clear_redis(prefix), self._timeout)
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

    async def invalidate(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        if instance is not None:
            args = (instance, *args)
        key = self.key(args, kwargs)
        try:
            return bool(await self._bounded(self.cache.delete(key, timeout=0), self._timeout))
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


class VixSerializer(BaseSerializer):  # type: ignore[misc]
    """An aiocache serializer that stores an envelope and serves values only while fresh.

    Args:
        serializer: The serializer of the values (default: aiocache's
            ``JsonSerializer``); an instance, or in config dicts a dotted class
            path or ``{"class": path, **kwargs}``. One that unpickles needs *secret*.
        breaker: A ``VIXCircuitBreaker`` or a registry name.
        status_of: Callable taking a value, returning its status (or a dotted
            path to one); the status is recorded into the breaker when the
            value is stored. Default: every value is NORMAL.
        ttl: The base TTL when ``set`` is given none; else the cache's ``ttl``;
            else the entry never expires. PANIC values have a base of 0.
        secret: Signs every entry (with its key, through ``VixPlugin``); a
            list rotates secrets: the first signs, every one verifies. Entries
            unsigned or signed otherwise are misses and are never decoded.
        clock: Wall-clock seconds for stored-at times (entries cross
            processes); a ``FakeClock`` in tests.

    ``loads`` returns the value while its age is below both its stored TTL
    and the breaker's decision now for its status and base TTL; ``None`` (a
    miss) once it is not, and for anything that is not a valid envelope.

    Counters (``increment``) and aiocache's lock tokens are raw values, not
    envelopes: keep them in a cache without this serializer.
    """

    def __init__(
        self,
        serializer: BaseSerializer | str | dict[str, Any] | None = None,
        *,
        breaker: VIXCircuitBreaker | str = "default",
        status_of: Callable[[Any], VixStatus | str] | str | None = None,
        ttl: float | None = None,
        secret: Secret | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.inner: BaseSerializer = _build(serializer) if serializer is not None else JsonSerializer()
        if not isinstance(self.inner, BaseSerializer):
            raise TypeError(f"VixSerializer: serializer must be an aiocache serializer, got {self.inner!r}")
        self.signer = signer_of(secret, owner="VixSerializer")
        if self.signer is None and _runs_code(self.inner):
            raise _pickle_needs_secret("VixSerializer")
        super().__init__(encoding=self.inner.encoding)
        self.breaker = get_breaker(breaker) if isinstance(breaker, str) else breaker
        if not isinstance(self.breaker, VIXCircuitBreaker):
            raise TypeError(f"VixSerializer: breaker must be a VIXCircuitBreaker or a name, got {breaker!r}")
        self.status_of = _resolve(status_of) if isinstance(status_of, str) else status_of
        if self.status_of is not None and not callable(self.status_of):
            raise TypeError(f"VixSerializer: status_of must be callable, got {status_of!r}")
        self.ttl = None if ttl is None else check_ttl("VixSerializer ttl", ttl)
        self.clock = check_clock("VixSerializer clock", clock)
        self.rejected = 0
        """Entries read that failed their signature check or did not decode."""
        self._rejections = FaultLog(f"VixSerializer({self.breaker.name})", events=REJECTED)

    def dumps(self, value: Any) -> Any:
        handover, key = _Handover.take()  # first: a status_of that raises must not leave it behind
        status = VixStatus.NORMAL if self.status_of is None else VixStatus.coerce(self.status_of(value))
        base = self._base_ttl(status, handover)
        ttl = self.breaker._observe(status, base)
        decided = _decided.get()
        if decided is not None:
            decided.append(ttl)
        header = Header(self.clock(), ttl, base, status.value)
        payload = self.inner.dumps(value)
        if handover is not None and handover.in_process:
            return seal_local(header, payload)  # aiocache's memory: nobody else writes there
        return seal(header, payload, signer=self.signer, key=key)

    def _base_ttl(self, status: VixStatus, handover: _Handover | None) -> float:
        """PANIC: 0; else ``set``'s ttl, else this serializer's, else the cache's, else never."""
        if status is VixStatus.PANIC:
            return 0.0
        set_ttl, cache_ttl = (None, None) if handover is None else (handover.set_ttl, handover.cache_ttl)
        for ttl in (set_ttl, self.ttl, cache_ttl):
            if ttl is not None:
                return ttl
        return math.inf

    def loads(self, value: Any) -> Any:
        _, key = _Handover.take()
        if value is None:
            return None
        opened = open_envelope(value, signer=self.signer, key=key)
        if opened is None:
            return self._reject("not a valid, signed vix_ttl entry")
        header, payload = opened
        decision = self.breaker.decide(header.status, header.base_ttl)
        if not fresh(self.clock() - header.stored_at, header.ttl, decision.ttl):
            return None
        try:
            loaded = self.inner.loads(payload)
        except Exception as exc:
            return self._reject(f"its payload does not decode: {exc!r}")
        if self._rejections.failing:
            self._rejections.recovered()
        return loaded

    def _reject(self, reason: str) -> None:
        self.rejected += 1
        self._rejections.failed("loads", RejectedEntryError(reason))


class VixPlugin(BasePlugin):  # type: ignore[misc]
    """Hands ``set``'s TTL and every command's keys to ``VixSerializer``; keeps entries for their decided TTL.

    Without it, the serializer still serves only fresh values, but signs
    entries without their key, uses its own ``ttl`` (or never expires) as the
    base, and the backend keeps entries for ``set``'s TTL.
    """

    async def pre_get(self, client: BaseCache, key: Any, *args: Any, **kwargs: Any) -> None:
        _hand_over(client, [key], kwargs.get("namespace"))

    async def pre_multi_get(self, client: BaseCache, keys: Any, *args: Any, **kwargs: Any) -> None:
        _hand_over(client, list(keys), kwargs.get("namespace"))

    async def pre_set(
        self, client: BaseCache, key: Any, value: Any, ttl: Any = SENTINEL, **kwargs: Any
    ) -> None:
        _hand_over(client, [key], kwargs.get("namespace"), ttl)

    async def post_set(
        self, client: BaseCache, key: Any, value: Any, ttl: Any = SENTINEL, **kwargs: Any
    ) -> None:
        await _expire(client, [key], ttl, kwargs.get("namespace"))

    pre_add = pre_set
    post_add = post_set

    async def pre_multi_set(self, client: BaseCache, pairs: Any, ttl: Any = SENTINEL, **kwargs: Any) -> None:
        _hand_over(client, [key for key, _ in pairs], kwargs.get("namespace"), ttl)

    async def post_multi_set(self, client: BaseCache, pairs: Any, ttl: Any = SENTINEL, **kwargs: Any) -> None:
        await _expire(client, [key for key, _ in pairs], ttl, kwargs.get("namespace"))


def _hand_over(client: BaseCache, keys: list[Any], namespace: str | None, ttl: Any = None) -> None:
    in_process = isinstance(client, SimpleMemoryBackend)
    built = [b"" if in_process else _key_bytes(client, key, namespace) for key in keys]
    if ttl is None:  # a read
        _handover.set(_Handover(built, in_process=in_process))
        return
    _handover.set(
        _Handover(
            built,
            in_process=in_process,
            set_ttl=None if ttl is SENTINEL else check_ttl("ttl", ttl),  # an explicit None: never expires
            cache_ttl=None if client.ttl is None else check_ttl("cache ttl", client.ttl),
        )
    )
    _decided.set([])


async def _expire(client: BaseCache, keys: list[Any], ttl: Any, namespace: str | None) -> None:
    decided = _decided.get() or []
    _decided.set(None)
    given = check_ttl("ttl", client.ttl if ttl is SENTINEL else ttl)  # what the backend was told
    for key, seconds in zip(keys, decided, strict=False):
        if seconds == 0:
            await client.delete(key, namespace=namespace)  # a bypass must not linger
        elif seconds != given:
            # aiocache's expire(key, 0) removes the expiry on every backend (PERSIST, touch 0).
            never = seconds == math.inf
            await client.expire(key, 0 if never else _expire_seconds(client, seconds), namespace=namespace)


class cached(_aiocache_cached):  # type: ignore[misc]  # noqa: N801 - aiocache's name
    """aiocache's ``cached`` with adaptive TTLs: ``vix_cached``'s decisions under aiocache's keys.

    Takes aiocache's arguments (``ttl``, ``key``, ``key_builder``, ``namespace``,
    ``cache``, ``serializer``, ``plugins``, ``alias``, backend kwargs) and
    vix_cached's (``status``, ``warning_ttl``, ``breaker``, ``coalesce``,
    ``secret``). Entries sit where aiocache puts them (``get_cache_key``, under
    the cache's namespace), so code moving to it finds its keys; a memcached
    key that memcached would mangle (spaces) or refuse (over 250 bytes) is
    hashed instead. ``None`` results are cached. ``ttl`` defaults to the
    cache's own ``ttl``; no ttl at all means never expires, as in aiocache.

    aiocache's default key is built with ``str()`` of the arguments: an
    argument whose ``repr`` is its memory address would key by address (a new
    object at a reused address would be served a dead one's value), so it is
    a ``TypeError`` pointing to ``key_builder=``.

    Not supported: ``skip_cache_func``, ``noself`` (keys of methods include the
    instance) and the per-call ``cache_read`` / ``cache_write`` /
    ``aiocache_wait_for_write`` arguments.
    """

    def __init__(
        self,
        ttl: Any = SENTINEL,
        *,
        status: Callable[..., VixStatus | str] | None = None,
        warning_ttl: float | None = None,
        breaker: VIXCircuitBreaker | str | None = None,
        coalesce: bool = True,
        secret: Secret | None = None,
        **kwargs: Any,
    ) -> None:
        for unsupported in ("skip_cache_func", "noself"):
            if unsupported in kwargs:
                raise TypeError(f"vix_ttl.aiocache.cached does not support {unsupported}=")
        super().__init__(ttl=ttl, **kwargs)
        self._vix = {
            "status": status or (lambda *args, **kwargs: VixStatus.NORMAL),
            "warning_ttl": warning_ttl,
            "breaker": breaker,
            "coalesce": coalesce,
            "secret": secret,
        }

    def __call__(self, f: Callable[..., Any]) -> Any:
        super().__call__(f)  # builds self.cache from alias or arguments, as aiocache does
        ttl = self.cache.ttl if self.ttl is SENTINEL else self.ttl
        wrapper = vix_cached(ttl, cache=self.cache, **self._vix)(f)  # type: ignore[arg-type]
        memcached = isinstance(self.cache, MemcachedBackend)

        def key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            if not (self.key or self.key_builder):
                _refuse_address_keys(f, args, kwargs)
            built = str(self.get_cache_key(f, args, kwargs))
            if memcached and not _memcached_safe(f"{self.cache.namespace or ''}{built}"):
                return "vix_ttl:#" + _digest(built)
            return built

        cast(Any, wrapper)._self_call.use_keys(key)
        return wrapper


# What a repr shows when an object's only identity is where it lives: "<Order object at
# 0x7f...>", "<function <lambda> at 0x7f...>", "<unlocked _thread.lock object at 0x7f...>".
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _refuse_address_keys(f: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in _leaves((args, kwargs)):
        if not isinstance(value, str | bytes | int | float | complex | type(None)) and _ADDRESS.search(
            repr(value)
        ):
            raise TypeError(
                f"vix_ttl.aiocache.cached({f.__qualname__}): aiocache's default key is str() of the "
                f"arguments, and {type(value).__qualname__}'s shows a memory address (another object "
                f"at the same address would be served its value): pass key_builder="
            )


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, tuple | list | set | frozenset):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, dict):
        for item in value.items():
            yield from _leaves(item)
    else:
        yield value


def _memcached_safe(key: str) -> bool:
    """Whether memcached stores *key* as it is (aiocache rewrites spaces; memcached refuses the rest)."""
    return len(key) <= _MEMCACHED_MAX_KEY and all(" " < char < "\x7f" for char in key)


def _digest(key: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()).rstrip(b"=").decode()


def _build(spec: BaseSerializer | str | dict[str, Any]) -> BaseSerializer:
    if isinstance(spec, str):
        return _resolve(spec)()
    if isinstance(spec, dict):
        spec = dict(spec)
        return _resolve(spec.pop("class"))(**spec)
    return spec


def _resolve(path: str) -> Any:
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot import {path!r} (expected 'package.module.name'): {exc}") from None
