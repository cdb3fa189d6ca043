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

import contextvars
import importlib
import math
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from vix_ttl._checks import check_clock, check_ttl, missing_extra

try:
    from aiocache.backends.memcached import MemcachedBackend
    from aiocache.backends.memory import SimpleMemoryBackend
    from aiocache.base import SENTINEL, BaseCache, _ensure_key
    from aiocache.decorators import cached as _aiocache_cached
    from aiocache.plugins import BasePlugin
    from aiocache.serializers import BaseSerializer, JsonSerializer
except ImportError as exc:
    raise missing_extra(__name__, "aiocache", exc) from exc

from vix_ttl._aiocache_backend import (
    MEMCACHED_MAX_TTL,
    backend_ttl,
    expire_seconds,
    key_bytes,
    memcached_safe,
    runs_code,
)
from vix_ttl._cache.api import fresh
from vix_ttl._cache.options import CacheOptions, Options
from vix_ttl._cache.shared import RejectedEntryError, needs_secret
from vix_ttl._envelope import Header, open_envelope, seal, seal_local
from vix_ttl._faults import REJECTED, FaultLog
from vix_ttl._keys import digest
from vix_ttl._monotonic import Newest
from vix_ttl._signing import Secret, signer_of
from vix_ttl.breaker import VIXCircuitBreaker
from vix_ttl.decorator import vix_cached
from vix_ttl.policy import PANIC_BASE_TTL
from vix_ttl.registry import get_breaker
from vix_ttl.status import VixStatus

__all__ = ["MEMCACHED_MAX_TTL", "VixPlugin", "VixSerializer", "backend_ttl", "cached"]

# What VixPlugin's pre hooks hand to VixSerializer for one command, and what dumps
# decided for the post hooks. Context variables: one per task, and aiocache runs a
# command's hooks and its dumps/loads in one task.
_handover: contextvars.ContextVar[_Handover | None] = contextvars.ContextVar("vix_ttl_handover", default=None)
_decided: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("vix_ttl_decided", default=None)


class _Handover:
    """One command's keys (as the backend stores them) and TTLs, from VixPlugin to its cache's VixSerializer.

    Only the serializer of the cache that ran the hook takes it, one key per
    dumps or loads, and the last key taken ends it: nothing lingers in the task
    for another cache's command (a command that failed, or one that brought its
    own ``dumps_fn`` / ``loads_fn``, never takes it). A handover never weakens a
    read: an in-process entry is told apart by its type, not by what was handed over.
    """

    __slots__ = ("cache_ttl", "in_process", "keys", "serializer", "set_ttl")

    def __init__(
        self,
        serializer: VixSerializer,
        keys: list[bytes],
        *,
        in_process: bool,
        set_ttl: float | None = None,
        cache_ttl: float | None = None,
    ) -> None:
        self.serializer = serializer
        self.keys = keys
        self.in_process = in_process
        self.set_ttl = set_ttl
        self.cache_ttl = cache_ttl

    @staticmethod
    def take(serializer: VixSerializer) -> tuple[_Handover | None, bytes | None]:
        """The handover meant for *serializer*, and the key of the entry it (de)serializes now."""
        handover = _handover.get()
        if handover is None:
            return None, None
        if handover.serializer is not serializer:
            _handover.set(None)  # another cache's, left by a command that never took it
            return None, None
        key = handover.keys.pop(0) if handover.keys else None
        if not handover.keys:
            _handover.set(None)
        return handover, key


class VixSerializer(BaseSerializer):  # type: ignore[misc]
    """An aiocache serializer that stores an envelope and serves values only while fresh.

    Args:
        serializer: The serializer of the values (default: aiocache's
            ``JsonSerializer``); an instance, or in config dicts a dotted class
            path or ``{"class": path, **kwargs}``. One that may run code needs
            *secret*: any but aiocache's Null, String, Json and MsgPack serializers,
            unless its class states ``runs_code = False``.
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
    miss) once it is not, and for anything that is not a valid envelope. A value
    whose status is bypassed now is written all the same, with the NORMAL base TTL
    (it replaces the entry; its status keeps it from being served while bypassed).
    Through ``VixPlugin`` (which tells it the keys), it never serves an entry older
    than one it has written or served for the same key (monotonic reads).

    Counters (``increment``) and aiocache's lock tokens are raw values, not
    envelopes: keep them in a cache without this serializer.
    """

    runs_code = False
    """Its inner serializer decodes nothing unsigned when it may run code (refused otherwise)."""

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
        if self.signer is None and runs_code(self.inner):
            raise needs_secret("VixSerializer", type(self.inner).__qualname__)
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
        self._newest = Newest()
        self._rejections = FaultLog(f"VixSerializer({self.breaker.name})", events=REJECTED, clock=self.clock)

    def dumps(self, value: Any) -> Any:
        handover, key = _Handover.take(self)  # first: a status_of that raises must not leave it behind
        status = VixStatus.NORMAL if self.status_of is None else VixStatus.coerce(self.status_of(value))
        base = self._base_ttl(status, handover)
        # A bypass (TTL 0) writes through with the NORMAL base: the value replaces the entry,
        # and the read rule (its status judged now) decides whether it is ever served.
        ttl = self.breaker.observe(status, base) or self._base_ttl(VixStatus.NORMAL, handover)
        decided = _decided.get()
        if decided is not None:
            decided.append(ttl)
        now = self.clock()
        header = Header(now, ttl, base, status.value, 0.0, self._newest.place(key, now) if key else now)
        payload = self.inner.dumps(value)
        if handover is not None and handover.in_process:
            return seal_local(header, payload)  # aiocache's memory: nobody else writes there
        return seal(header, payload, signer=self.signer, key=key)

    def _base_ttl(self, status: VixStatus, handover: _Handover | None) -> float:
        """PANIC: 0; else ``set``'s ttl, else this serializer's, else the cache's, else never."""
        if status is VixStatus.PANIC:
            return PANIC_BASE_TTL
        set_ttl, cache_ttl = (None, None) if handover is None else (handover.set_ttl, handover.cache_ttl)
        for ttl in (set_ttl, self.ttl, cache_ttl):
            if ttl is not None:
                return ttl
        return math.inf

    def loads(self, value: Any) -> Any:
        _, key = _Handover.take(self)
        if value is None:
            return None
        opened = open_envelope(value, signer=self.signer, key=key)
        if opened is None:
            return self._reject("not a valid, signed vix_ttl entry")
        header, payload = opened
        now = self.clock()
        if key and not self._newest.see(key, header.order, now):
            return None  # older than a value of this key this serializer has seen
        decision = self.breaker.decide(header.status, header.base_ttl)
        if not fresh(now - header.stored_at, header.ttl, decision.ttl):
            return None
        try:
            loaded = self.inner.loads(payload)
        except Exception as exc:
            return self._reject(f"its payload does not decode: {exc!r}")
        self._rejections.recovered("loads")
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
        _hand_over(client, [key], kwargs)

    async def pre_multi_get(self, client: BaseCache, keys: Any, *args: Any, **kwargs: Any) -> None:
        _hand_over(client, list(keys), kwargs)

    async def pre_set(
        self, client: BaseCache, key: Any, value: Any, ttl: Any = SENTINEL, **kwargs: Any
    ) -> None:
        _hand_over(client, [key], kwargs, write=True, ttl=ttl)

    async def post_set(
        self, client: BaseCache, key: Any, value: Any, ttl: Any = SENTINEL, **kwargs: Any
    ) -> None:
        await _expire(client, [key], ttl, kwargs.get("namespace"))

    pre_add = pre_set
    post_add = post_set

    async def pre_multi_set(self, client: BaseCache, pairs: Any, ttl: Any = SENTINEL, **kwargs: Any) -> None:
        _hand_over(client, [key for key, _ in pairs], kwargs, write=True, ttl=ttl)

    async def post_multi_set(self, client: BaseCache, pairs: Any, ttl: Any = SENTINEL, **kwargs: Any) -> None:
        await _expire(client, [key for key, _ in pairs], ttl, kwargs.get("namespace"))


def _hand_over(
    client: BaseCache, keys: list[Any], kwargs: dict[str, Any], *, write: bool = False, ttl: Any = SENTINEL
) -> None:
    """Set the handover for this command, or clear a stale one when its serializer will not run."""
    serializer = client.serializer
    if not isinstance(serializer, VixSerializer) or kwargs.get("dumps_fn") or kwargs.get("loads_fn"):
        _handover.set(None)
        _decided.set(None)  # and the post hook has nothing to act on
        return
    in_process = isinstance(client, SimpleMemoryBackend)
    namespace = kwargs.get("namespace")
    built = [b"" if in_process else key_bytes(client, key, namespace) for key in keys]
    handover = _Handover(serializer, built, in_process=in_process)
    if write:
        handover.set_ttl = (
            None if ttl is SENTINEL else check_ttl("ttl", ttl)
        )  # an explicit None: never expires
        handover.cache_ttl = None if client.ttl is None else check_ttl("cache ttl", client.ttl)
        _decided.set([])
    _handover.set(handover)


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
            await client.expire(key, 0 if never else expire_seconds(client, seconds), namespace=namespace)


class cached(_aiocache_cached):  # type: ignore[misc]  # noqa: N801 - aiocache's name
    """aiocache's ``cached`` with adaptive TTLs: ``vix_cached``'s decisions under aiocache's keys.

    Takes aiocache's arguments (``ttl``, ``key``, ``key_builder``, ``namespace``,
    ``cache``, ``serializer``, ``plugins``, ``alias``, backend kwargs) and
    ``CacheOptions``, as ``vix_cached`` does (``status`` default: always normal).
    Entries sit where aiocache puts them (``get_cache_key``, under
    the cache's namespace), so code moving to it finds its keys; a memcached
    key that memcached would mangle (spaces) or refuse (over 250 bytes) is
    hashed instead. ``None`` results are cached. ``ttl`` defaults to the
    cache's own ``ttl``; no ttl at all means never expires, as in aiocache.

    aiocache's default key is built with ``str()`` of the arguments: an
    argument whose ``repr`` is its memory address would key by address (a new
    object at a reused address would be served a dead one's value), so it is
    a ``TypeError`` pointing to ``key_builder=``.

    ``skip_cache_func(result)`` true: the result is returned and not kept (the entry it
    would replace is dropped: what was served before it must not come back after it).
    ``noself=True``: a method's instance is not in its default key, as in aiocache.

    Not supported: the per-call ``cache_read`` / ``cache_write`` /
    ``aiocache_wait_for_write`` arguments.
    """

    def __init__(self, ttl: Any = SENTINEL, **kwargs: Any) -> None:
        # vix_cached's options (CacheOptions) apart from aiocache's, which aiocache checks.
        vix = {name: kwargs.pop(name) for name in CacheOptions.__annotations__ if name in kwargs}
        super().__init__(ttl=ttl, **kwargs)
        if not callable(self.skip_cache_func):
            raise TypeError(
                f"vix_ttl.aiocache.cached: skip_cache_func must be a callable of the result, "
                f"got {self.skip_cache_func!r}"
            )
        self._vix: CacheOptions = {"status": _always_normal, **vix}  # type: ignore[typeddict-item]
        try:  # said now, of this decorator, rather than when it decorates
            Options.checked(None, {"cache": None, "maxsize": 1, "key": None, "namespace": None}, self._vix)
        except (TypeError, ValueError) as exc:
            raise type(exc)(
                f"vix_ttl.aiocache.cached: {str(exc).removeprefix('vix_cached').lstrip(': ')}"
            ) from None

    def __call__(self, f: Callable[..., Any]) -> Any:
        super().__call__(f)  # builds self.cache from alias or arguments, as aiocache does
        ttl = self.cache.ttl if self.ttl is SENTINEL else self.ttl
        skip = self.skip_cache_func
        memcached = isinstance(self.cache, MemcachedBackend)

        def key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if not (self.key or self.key_builder):
                _refuse_address_keys(f, args[1:] if self.noself else args, kwargs)
            built = _ensure_key(self.get_cache_key(f, args, kwargs))  # as aiocache keys: an Enum by its value
            if memcached and not memcached_safe(f"{self.cache.namespace or ''}{built}"):
                return "vix_ttl:" + digest(str(built))
            return built

        decorator = vix_cached(ttl, cache=self.cache, **self._vix).replace(
            entry_ttl=lambda value, ttl: 0.0 if skip(value) else ttl, wire_key=key
        )
        return decorator(f)


def _always_normal(*args: Any, **kwargs: Any) -> VixStatus:
    return VixStatus.NORMAL


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
