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
import itertools
import math
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from aiocache.backends.memcached import MemcachedBackend
from aiocache.backends.memory import SimpleMemoryBackend
from aiocache.backends.redis import RedisBackend
from aiocache.base import SENTINEL, BaseCache
from aiocache.decorators import cached as _aiocache_cached
from aiocache.plugins import BasePlugin
from aiocache.serializers import BaseSerializer, JsonSerializer, PickleSerializer

from vix_ttl._checks import check_clock, check_ttl
from vix_ttl._envelope import Header, open_envelope, seal
from vix_ttl._faults import REJECTED, FaultLog
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

MEMCACHED_MAX_TTL = 30 * 24 * 3600
"""memcached reads a larger expiry as an absolute Unix time."""

_MEMCACHED_MAX_KEY = 250  # bytes; and no spaces or control characters

# What VixPlugin's pre hooks hand to VixSerializer, and what dumps decided for
# the post hooks. Context variables: one per task, and aiocache runs a
# command's hooks and its dumps/loads in one task.
_handed_ttl: contextvars.ContextVar[tuple[float | None, float | None] | None] = contextvars.ContextVar(
    "vix_ttl_handed_ttl", default=None
)
_handed_keys: contextvars.ContextVar[Iterator[object] | None] = contextvars.ContextVar(
    "vix_ttl_handed_keys", default=None
)
_decided: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("vix_ttl_decided", default=None)


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
        in_process = isinstance(cache, SimpleMemoryBackend)
        if signer is None and wrapper is not None:
            signer = wrapper.signer
        if in_process:
            signer = None  # nobody else writes to this process's memory
        elif signer is None and _runs_code(inner):
            raise _pickle_needs_secret(f"vix_cached({self.name})")
        self._signer = signer
        self._dumps, self._loads = inner.dumps, inner.loads
        # aiocache wraps every command in asyncio.wait_for (a task per call);
        # we pass timeout=0 and bound the wait ourselves, for network backends only.
        self._timeout: float | None = None if in_process else (cache.timeout or None)
        self._rejections = FaultLog(self.name, events=REJECTED)
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
                async with asyncio.timeout(budget):
                    raw = await self.cache.get(key, loads_fn=_identity, timeout=0)
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
                    elif self._clock() - opened[0].stored_at < min(opened[0].ttl, ttl):
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

    def _reject(self, reason: str) -> str:
        self._rejections.failed("get", RejectedEntryError(reason))
        return _REJECTED

    async def _write(
        self, key: str, signed_key: bytes | None, value: Any, header: Header, budget: float | None
    ) -> bool:
        """Store *value* in its envelope within *budget* seconds; False if the backend failed."""
        try:
            if budget is not None and budget <= 0:
                raise TimeoutError("the read took the call's whole timeout: not writing")
            envelope = seal(header, self._dumps(value), signer=self._signer, key=signed_key)
            async with asyncio.timeout(budget):
                await self.cache.set(
                    key, envelope, ttl=backend_ttl(self.cache, header.ttl), dumps_fn=_identity, timeout=0
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
        if isinstance(self.cache, RedisBackend):
            # aiocache's clear(namespace) matches "<namespace>:*"; ours is a plain prefix.
            # key_prefix never holds a glob character, so the pattern is the prefix itself.
            client = self.cache.client
            keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
            if keys:
                await client.delete(*keys)
        else:
            await self.cache.clear(namespace=prefix)
        self._reset_counts()

    async def invalidate(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        if instance is not None:
            args = (instance, *args)
        return bool(await self.cache.delete(self.key(args, kwargs)))


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
        status = VixStatus.NORMAL if self.status_of is None else VixStatus.coerce(self.status_of(value))
        base = self._base_ttl(status)
        ttl = self.breaker.observe(status, base)
        decided = _decided.get()
        if decided is not None:
            decided.append(ttl)
        header = Header(self.clock(), ttl, base, status.value)
        signer, key = self._signing()
        return seal(header, self.inner.dumps(value), signer=signer, key=key)

    def _base_ttl(self, status: VixStatus) -> float:
        """PANIC: 0; else ``set``'s ttl, else this serializer's, else the cache's, else never."""
        if status is VixStatus.PANIC:
            return 0.0
        set_ttl, cache_ttl = _handed_ttl.get() or (None, None)
        for ttl in (set_ttl, self.ttl, cache_ttl):
            if ttl is not None:
                return ttl
        return math.inf

    def loads(self, value: Any) -> Any:
        signer, key = self._signing()
        if value is None:
            return None
        opened = open_envelope(value, signer=signer, key=key)
        if opened is None:
            return self._reject("not a valid, signed vix_ttl entry")
        header, payload = opened
        decision = self.breaker.decide(header.status, header.base_ttl)
        if self.clock() - header.stored_at >= min(header.ttl, decision.ttl):
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

    def _signing(self) -> tuple[Signer | None, bytes | None]:
        """The signer and key for the entry being (de)serialized.

        The key is known when ``VixPlugin`` handed it over; so is a memory
        backend, whose entries nobody else can write: they go unsigned.
        """
        keys = _handed_keys.get()
        if keys is None:
            return self.signer, None
        key = next(keys, None)
        return (None, None) if key is _IN_PROCESS else (self.signer, cast(bytes | None, key))


_IN_PROCESS: Any = object()  # handed over for every key of a memory backend: no signature needed


class VixPlugin(BasePlugin):  # type: ignore[misc]
    """Hands ``set``'s TTL and every command's keys to ``VixSerializer``; keeps entries for their decided TTL.

    Without it, the serializer still serves only fresh values, but signs
    entries without their key, uses its own ``ttl`` (or never expires) as the
    base, and the backend keeps entries for ``set``'s TTL.
    """

    async def pre_get(self, client: BaseCache, key: Any, *args: Any, **kwargs: Any) -> None:
        _hand_keys(client, [key], kwargs.get("namespace"))

    async def pre_multi_get(self, client: BaseCache, keys: Any, *args: Any, **kwargs: Any) -> None:
        _hand_keys(client, list(keys), kwargs.get("namespace"))

    async def post_get(self, client: BaseCache, *args: Any, **kwargs: Any) -> None:
        _handed_keys.set(None)

    post_multi_get = post_get

    async def pre_set(
        self, client: BaseCache, key: Any, value: Any, ttl: Any = SENTINEL, **kwargs: Any
    ) -> None:
        _hand_ttl(client, ttl)
        _hand_keys(client, [key], kwargs.get("namespace"))

    async def post_set(
        self, client: BaseCache, key: Any, value: Any, ttl: Any = SENTINEL, **kwargs: Any
    ) -> None:
        await _expire(client, [key], ttl, kwargs.get("namespace"))

    pre_add = pre_set
    post_add = post_set

    async def pre_multi_set(self, client: BaseCache, pairs: Any, ttl: Any = SENTINEL, **kwargs: Any) -> None:
        _hand_ttl(client, ttl)
        _hand_keys(client, [key for key, _ in pairs], kwargs.get("namespace"))

    async def post_multi_set(self, client: BaseCache, pairs: Any, ttl: Any = SENTINEL, **kwargs: Any) -> None:
        await _expire(client, [key for key, _ in pairs], ttl, kwargs.get("namespace"))


def _hand_keys(client: BaseCache, keys: list[Any], namespace: str | None) -> None:
    if isinstance(client, SimpleMemoryBackend):
        _handed_keys.set(itertools.repeat(_IN_PROCESS, len(keys)))
    else:
        _handed_keys.set(iter([_key_bytes(client, key, namespace) for key in keys]))


def _hand_ttl(client: BaseCache, ttl: Any) -> None:
    set_ttl = None if ttl is SENTINEL else check_ttl("ttl", ttl)  # an explicit None: never expires
    cache_ttl = None if client.ttl is None else check_ttl("cache ttl", client.ttl)
    _handed_ttl.set((set_ttl, cache_ttl))
    _decided.set([])


async def _expire(client: BaseCache, keys: list[Any], ttl: Any, namespace: str | None) -> None:
    decided = _decided.get() or []
    _handed_ttl.set(None)
    _handed_keys.set(None)
    _decided.set(None)
    given = check_ttl("ttl", client.ttl if ttl is SENTINEL else ttl)  # what the backend was told
    for key, seconds in zip(keys, decided, strict=False):
        if seconds == 0:
            await client.delete(key, namespace=namespace)  # a bypass must not linger
        elif seconds not in (given, math.inf):
            await client.expire(key, _expire_seconds(client, seconds), namespace=namespace)


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


_ADDRESS_REPR: Any = object.__repr__  # "<Order object at 0x7f...>"


def _refuse_address_keys(f: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in _leaves((args, kwargs)):
        if type(value).__repr__ is _ADDRESS_REPR:
            raise TypeError(
                f"vix_ttl.aiocache.cached({f.__qualname__}): aiocache's default key is str() of the "
                f"arguments, and a {type(value).__qualname__}'s str() is its memory address (another "
                f"object at the same address would be served its value): pass key_builder="
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
