"""The options of ``@vix_cached``, written once: the ``CacheOptions`` every entry point takes
(``vix_cached``, ``VixCacheMiddleware``, ``vix_ttl.aiocache.cached``), checked into one
``Options`` record at decoration time, and ``Function``: one decorated function's options,
name and breaker, which the engine and its store are built from.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, TypedDict

from vix_ttl._checks import check_clock, check_count, check_name, check_seconds, check_ttl
from vix_ttl._signing import Secret, Signer, signer_of
from vix_ttl._stale import NO_ALLOWANCE, Allowance
from vix_ttl.breaker import VIXCircuitBreaker
from vix_ttl.mode import Mode
from vix_ttl.policy import PANIC_BASE_TTL
from vix_ttl.status import VixStatus

__all__ = ["CacheOptions", "Function", "Options", "TTLArg", "check_options"]

TTLArg = float | Callable[..., float]
"""A base TTL: seconds (``inf``: never expires), or a callable of the call's arguments."""

_NORMAL, _WARNING, _PANIC = VixStatus.NORMAL, VixStatus.WARNING, VixStatus.PANIC


class CacheOptions(TypedDict, total=False):
    """The options every way into vix_ttl's cache takes, by keyword (all optional).

    ``vix_cached`` takes them with its own (``ttl``, ``cache``, ``maxsize``, ``key``,
    ``namespace``); so do ``VixCacheMiddleware`` and ``vix_ttl.aiocache.cached``.
    """

    status: Callable[..., VixStatus | str]
    """Takes the call's arguments, returns a ``VixStatus`` or its name (``vix_cached``: required)."""
    warning_ttl: TTLArg | None
    """Base TTL for WARNING status (default: the NORMAL one). PANIC's base is 0."""
    breaker: VIXCircuitBreaker | str | None
    """A breaker, a registry name (``get_breaker``), or None: one of the function's own,
    registered under its namespace. Functions share a breaker only when they name the same one."""
    coalesce: bool
    """Concurrent calls for one key share one computation (in every process, on a shared
    store). Default True."""
    stale_while_revalidate: float | Mapping[Mode | str, float]
    """Seconds an entry past its fresh TTL is still served at once while one refresh runs
    (a number, or mode -> seconds: missing modes 0). Never while the decision is a bypass."""
    stale_if_error: float | Mapping[Mode | str, float]
    """Seconds an entry past its fresh TTL is served instead of the computation's exception."""
    early_refresh: float
    """XFetch's beta (0: off): a hit with r seconds of freshness left starts a background
    refresh with probability exp(-r / (delta * beta)), delta being the entry's computation time."""
    secret: Secret | None
    """Signs the entries of a shared store, so forged ones are rejected; a list rotates
    secrets (the first signs, every one verifies). Required when the serializer pickles."""
    clock: Callable[[], float] | None
    """What entry ages are measured with (default: the breaker's clock in-process, wall-clock
    on shared stores)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """Every option of one ``vix_cached(...)``, checked: what its decorator builds functions from.

    The last four are how vix_ttl's integrations shape a function beyond ``CacheOptions``
    (``Decorator.replace``); they are documented, not private.
    """

    status: Callable[..., Any]
    bases: dict[VixStatus, tuple[VixStatus, TTLArg]]
    """Status -> (status, base TTL): one lookup takes a status member or its name."""
    breaker: VIXCircuitBreaker | str | None
    cache: Any
    maxsize: int
    key: Callable[..., Hashable] | None
    namespace: str | None
    coalesce: bool
    signer: Signer | None
    clock: Callable[[], float] | None
    stale_while_revalidate: Allowance = NO_ALLOWANCE
    stale_if_error: Allowance = NO_ALLOWANCE
    early_refresh: float = 0.0
    records: bool = True
    """Whether each call records its status; False: statuses are recorded elsewhere (when an
    entry is stored) and a call is only judged (the ASGI middleware's ``X-Vix-Status``)."""
    entry_ttl: Callable[[Any, float], float] | None = None
    """The TTL a computed value is stored with, from the value and the TTL decided for its
    call (None: that TTL); 0 stores nothing, and drops the entry it replaces."""
    stale_ok: Callable[[Any], bool] | None = None
    """Whether a value may be served past its fresh TTL at all (None: every one may, within
    the allowances): an HTTP response that says ``must-revalidate`` may not."""
    same: Callable[[Any, Any], bool] | None = None
    """Whether a recomputed value is its key's previous one, for a learning policy (None:
    ``==``): an HTTP response is by its status and body, not the time it was stored."""
    wire_key: Callable[[tuple[Any, ...], dict[str, Any]], Any] | None = None
    """A shared store's key of one call, from its arguments (None: vix_ttl's stable keys)."""

    @classmethod
    def checked(cls, ttl: TTLArg | None, own: Mapping[str, Any], options: Mapping[str, Any]) -> Options:
        """``vix_cached``'s arguments, each checked (a ``TypeError`` / ``ValueError`` naming it):
        *ttl*, its *own* (``cache``, ``maxsize``, ``key``, ``namespace``) and the *options*
        (``CacheOptions``)."""
        cache, maxsize, key, namespace = own["cache"], own["maxsize"], own["key"], own["namespace"]
        if isinstance(ttl, MutableMapping):  # cachetools' habit: the cache first
            raise TypeError(
                f"vix_cached: the first argument is the base TTL (seconds, a callable, or None), got the "
                f"cache {type(ttl).__qualname__}(...): pass it as cache=, e.g. vix_cached(60, "
                f"status=..., cache={type(ttl).__qualname__}(...))"
            )
        check_options("vix_cached", options, ["ttl", *own])
        status = options.get("status")
        if status is None and callable(ttl):
            raise TypeError(
                "vix_cached needs status=, in its parentheses: write @vix_cached(60, status=lambda *args: "
                "'normal') above the function (written @vix_cached alone, it got the function as its ttl)"
            )
        if not callable(status):
            raise TypeError(
                "vix_cached: status= must be a callable taking the call's arguments and returning "
                f"'normal', 'warning' or 'panic' (or a VixStatus), got {status!r}"
            )
        check_count("vix_cached maxsize", maxsize, minimum=1)
        if key is not None and not callable(key):
            raise TypeError(f"vix_cached: key must be a callable taking the call's arguments, got {key!r}")
        if namespace is not None:
            check_name("vix_cached namespace", namespace)
        coalesce = options.get("coalesce", True)
        if not isinstance(coalesce, bool):
            raise TypeError(f"vix_cached: coalesce must be True or False, got {coalesce!r}")
        clock = options.get("clock")
        return cls(
            status=status,
            bases=_base_ttls(ttl, options.get("warning_ttl")),
            breaker=_checked_breaker(options.get("breaker")),
            cache=cache,
            maxsize=maxsize,
            key=key,
            namespace=namespace,
            coalesce=coalesce,
            signer=signer_of(options.get("secret"), owner="vix_cached"),
            clock=None if clock is None else check_clock("vix_cached clock", clock),
            stale_while_revalidate=Allowance.of(
                "vix_cached stale_while_revalidate", options.get("stale_while_revalidate", 0)
            ),
            stale_if_error=Allowance.of("vix_cached stale_if_error", options.get("stale_if_error", 0)),
            early_refresh=check_seconds("vix_cached early_refresh", options.get("early_refresh", 0)),
        )


@dataclass(frozen=True, slots=True)
class Function:
    """One decorated function: its options, its name (``module.qualname``: in logs, errors
    and metrics), the namespace of its entries and its breaker."""

    options: Options
    name: str
    namespace: str
    breaker: VIXCircuitBreaker
    is_async: bool

    def error(self, said: str) -> str:
        """*said*, as an error of this function's."""
        return f"vix_cached({self.name}): {said}"

    def call(
        self, role: str, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """*function* (the *role* callable: status, ttl, key) called with one call's arguments.

        A ``TypeError`` it raises is said plainly when the callable cannot take the call's
        arguments, else raised as it was (the callable itself raised it).
        """
        try:
            return function(*args, **kwargs)
        except TypeError as exc:
            raise self.arity_error(role, function, exc, args, kwargs) from None

    def arity_error(
        self, role: str, function: Any, error: TypeError, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TypeError:
        """``call``'s error, for a caller that called *function* itself (the hit path)."""
        try:
            inspect.signature(function).bind(*args, **kwargs)
        except TypeError as mismatch:
            name = getattr(function, "__qualname__", repr(function))
            given = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
            return TypeError(
                self.error(
                    f"the {role} function {name} cannot take the call's arguments ({given}): {mismatch}. "
                    f"It gets exactly what the decorated function gets (self or cls too, for methods): "
                    f"give it the same parameters"
                )
            )
        except ValueError:  # no signature to check (a builtin): the error as it was
            pass
        return error

    def checked_status(self, status: Any) -> VixStatus:
        """What a status function returned, as a member, or an error saying what it returned."""
        try:
            return VixStatus.coerce(status)
        except ValueError as exc:
            raise ValueError(self.error(f"the status function returned {exc}")) from None

    def ttl_of(self, function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
        """The base TTL a ttl function gives for one call, checked."""
        ttl = self.call("ttl", function, args, kwargs)
        try:
            return check_ttl("ttl", ttl)
        except (TypeError, ValueError) as exc:
            raise type(exc)(self.error(f"the ttl function returned an invalid value: {exc}")) from None


def check_options(owner: str, options: Mapping[str, Any], own: list[str]) -> None:
    """A ``TypeError`` for any of *options* that is not a ``CacheOptions``, listing what *owner*
    takes: its *own* arguments, then ``CacheOptions``."""
    unknown = sorted(options.keys() - CacheOptions.__annotations__.keys())
    if unknown:
        allowed = ", ".join([*own, *CacheOptions.__annotations__])
        raise TypeError(f"{owner}: unknown option {', '.join(unknown)} (allowed: {allowed})")


def _base_ttls(ttl: Any, warning_ttl: Any) -> dict[VixStatus, tuple[VixStatus, TTLArg]]:
    """Status -> (status, base TTL): seconds (``inf``: never expires), or a callable giving them per call."""
    normal = ttl if callable(ttl) else check_ttl("vix_cached ttl", ttl)
    if warning_ttl is None:
        warning = normal
    else:
        warning = warning_ttl if callable(warning_ttl) else check_ttl("vix_cached warning_ttl", warning_ttl)
    return {_NORMAL: (_NORMAL, normal), _WARNING: (_WARNING, warning), _PANIC: (_PANIC, PANIC_BASE_TTL)}


def _checked_breaker(breaker: object) -> VIXCircuitBreaker | str | None:
    if breaker is None or isinstance(breaker, VIXCircuitBreaker):
        return breaker
    if isinstance(breaker, str):
        return check_name("vix_cached breaker", breaker)
    raise TypeError(
        f"vix_cached: breaker must be a VIXCircuitBreaker, a registry name or None (a breaker of the "
        f"function's own), got {breaker!r}"
    )
