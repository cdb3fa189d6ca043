"""``VixCacheMiddleware``: vix_ttl's decisions for whole HTTP responses, as pure ASGI.

A GET is one call of a ``@vix_cached`` coroutine whose key is the request's scheme,
host, raw path, raw query and the request headers the response varies on, and whose
computation runs the application and captures its response: the same stores, keys,
signing, coalescing and stale rules as ``vix_cached``, on the same clock. What HTTP
adds — which requests and responses may be shared, the app's own freshness as an
upper bound, ETags, the RFC 9111 / 5861 headers — is ``vix_ttl._http``'s; this
module runs the requests.

A client cannot defeat the backend protection nor poison the cache: a request with a
body or credentials is passed through; its ``no-cache`` is served from the cache
unless ``client_revalidation=True``; the computation runs without the client's own
conditions and ranges; a response that cannot be shared (it sets a cookie, say) is
its requester's, and the others elect a new leader. Responses that must never be
shared end the computation with ``_Passed``, a ``NotKept``: the engine neither
stores it nor serves a stale entry instead.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cachetools

from vix_ttl import _http
from vix_ttl._cache.api import OUTCOMES, CacheInfo, Entry, Outcome
from vix_ttl._cache.options import CacheOptions, check_options
from vix_ttl._checks import check_count, check_ttl
from vix_ttl._coalesce import AsyncCoalescer
from vix_ttl._log import get_logger
from vix_ttl._proxy import engine_of
from vix_ttl._refresh import NotKept
from vix_ttl.decorator import vix_cached
from vix_ttl.mode import Mode
from vix_ttl.policy import PANIC_BASE_TTL
from vix_ttl.status import VixStatus

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["STATUS_HEADER", "VixCacheMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STATUS_HEADER = "x-vix-status"
"""The response header an application states its data's status in (stripped before it leaves)."""

MAX_BODY = 1_048_576
"""Bytes: a larger response is passed on, never kept."""
MAX_BYTES = 67_108_864
"""Bytes: how much the default in-process store holds, responses' bodies and headers counted."""

# X-Vix-Cache: what happened to a request, from the outcome its call was counted under.
_SAID = {
    Outcome.HIT: "hit",
    Outcome.MISS: "miss",
    Outcome.STALE: "stale",
    Outcome.BYPASS: "bypass",
    Outcome.COALESCED: "miss",
    Outcome.ERROR: "error",
    Outcome.REJECTED: "miss",
    Outcome.SERVED_STALE: "revalidating",
    Outcome.SERVED_ON_ERROR: "fallback",
}
# Headers this middleware states itself, or that describe one connection only.
_OWN = frozenset(
    {b"cache-control", b"age", b"etag", b"x-vix-cache", STATUS_HEADER.encode(), b"content-length"}
)
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"})
_NOT_KEPT = _OWN | _HOP_BY_HOP  # headers an entry never holds
_STATUS_OF = {status.value: status for status in VixStatus}
_FROM_THE_CACHE = frozenset({Outcome.HIT, Outcome.SERVED_STALE, Outcome.SERVED_ON_ERROR})
_SERVED = frozenset(_SAID[outcome] for outcome in _FROM_THE_CACHE)
_NUMBERS = (int, float)


@dataclass
class _Request:
    """One request, as the computation it may lead needs it."""

    scope: Scope
    headers: _http.Headers
    receive: Receive
    send: Send
    answered: bool = False
    """Its response has begun: a background refresh it started must not write to it."""
    outcomes: list[Outcome] = field(default_factory=list)
    status: VixStatus | None = None
    """What ``status(scope)`` said of it (status mode)."""
    rest: asyncio.Future[None] | None = None
    """The application's call, still running for this request: a stream it forwards, or
    what the application does after its response (background tasks); awaited last."""


_REQUEST: ContextVar[_Request] = ContextVar("vix_ttl_asgi_request")
_COMPUTED: ContextVar[dict[str, Any] | None] = ContextVar("vix_ttl_asgi_computed", default=None)


class _Passed(NotKept):
    """A response that must not be stored (or was streamed to its client already)."""

    def __init__(
        self, request: _Request, response: _http.Response | None, *, shareable: bool = False
    ) -> None:
        super().__init__()
        # The request whose computation it was: the response is for it first.
        self.request, self.response = request, response
        # An answer that is nobody's own (a 404, say): the waiting requests elect a new leader
        # first (one client's request may have caused it), and share the new leader's.
        self.shareable = shareable and response is not None


class _AppFailed(Exception):  # noqa: N818 - carries the response, not a failure of ours
    """The application answered 5xx: a failed computation (``stale_if_error``), never stored."""

    def __init__(self, request: _Request, response: _http.Response) -> None:
        super().__init__(f"the application answered {response.status}")
        self.request, self.response = request, response
        # An error page goes to every caller that waited on it, unless it is someone's.
        self.shareable = not _http.personal(response)


class _AppRaised(Exception):  # noqa: N818 - carries the application's exception
    """The application raised before its response was complete: a failed computation
    (``stale_if_error``). It is its leader's: the request that led may have caused it."""

    def __init__(self, request: _Request, error: Exception) -> None:
        super().__init__(f"the application raised {error!r}")
        self.request, self.error = request, error
        self.response, self.shareable = None, False


class VixCacheMiddleware:
    """Cache 200 responses to GET (HEAD answered from them) with vix_ttl's adaptive TTLs.

    Args:
        app: The ASGI application.
        ttl: Base TTL in seconds for NORMAL status (``None``: never expires).
        status: A callable of the request's ASGI ``scope`` returning its status, recorded
            per request; None: the application's ``X-Vix-Status`` response header,
            recorded when the response is stored, judges later requests.
        cache, namespace: As for ``vix_cached`` (``namespace`` default: ``"vix_ttl.asgi"``).
        max_body: Bytes: a larger response is passed on, never kept (default 1 MiB).
        max_bytes: Bytes the default in-process store holds at most (default 64 MiB; a
            store of yours, ``cache=``, is bounded as you built it).
        client_revalidation: Honour a request's ``Cache-Control: no-cache`` (or
            ``max-age=0``) by computing afresh (coalesced with other such requests);
            default False: served from the cache, as CDNs do, so that a client cannot
            send every request to the backend.
        **options: ``CacheOptions``, as for ``vix_cached`` (the default breaker: the
            middleware's own, registered under its namespace).

    Raises:
        TypeError, ValueError: an argument out of range, as ``vix_cached`` says.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        ttl: float | None,
        cache: Any = None,
        namespace: str | None = None,
        max_body: int = MAX_BODY,
        max_bytes: int = MAX_BYTES,
        client_revalidation: bool = False,
        **options: Unpack[CacheOptions],
    ) -> None:
        # vix_cached's own arguments (key=, maxsize=) are not the middleware's: its keys are HTTP's.
        check_options("VixCacheMiddleware", options, _OWN_ARGUMENTS)
        status = options.get("status")
        options["status"] = self._request_status if status is not None else self._stored_status
        if not callable(app):
            raise TypeError(f"VixCacheMiddleware: app must be an ASGI application, got {app!r}")
        if status is not None and not callable(status):
            raise TypeError(f"VixCacheMiddleware: status must be a callable of the scope, got {status!r}")
        if cache is not None and namespace is None:
            raise TypeError(
                "VixCacheMiddleware over a cache of yours needs namespace= (a name for this service): "
                "two services sharing the store would otherwise serve each other's pages"
            )
        self._max_body = check_count("VixCacheMiddleware max_body", max_body, minimum=0)
        self._max_bytes = check_count("VixCacheMiddleware max_bytes", max_bytes, minimum=1)
        if cache is None and self._max_body > max_bytes:
            raise ValueError(
                f"VixCacheMiddleware: max_body ({max_body}) must not exceed max_bytes ({max_bytes}): "
                f"no response that size could be kept"
            )
        if not isinstance(client_revalidation, bool):
            raise TypeError(
                f"VixCacheMiddleware: client_revalidation must be True or False, got {client_revalidation!r}"
            )
        self.app = app
        self._base = check_ttl("VixCacheMiddleware ttl", ttl)
        warning_ttl = options.get("warning_ttl")
        # Per status, the base TTL max-age restates (a callable's would need the request).
        self._bases = {
            VixStatus.NORMAL: self._base,
            VixStatus.WARNING: self._base
            if warning_ttl is None
            else check_ttl("VixCacheMiddleware warning_ttl", warning_ttl),
            VixStatus.PANIC: PANIC_BASE_TTL,
        }
        self._scope_status = status
        self._revalidation = client_revalidation
        self._revalidations = AsyncCoalescer()  # requests asking for a fresh response share its computation
        self._seen: dict[Any, VixStatus] = {}  # header mode: each key's last stored status
        self._in_process = cache is None or isinstance(cache, MutableMapping)
        self._bounded = cache is None  # the default store: max_bytes bounds it
        if cache is None:  # bounded in bytes: cache-busting queries cannot fill the memory
            cache = cachetools.FIFOCache(max_bytes, getsizeof=_entry_bytes)
        try:
            decorator = vix_cached(
                ttl,
                cache=cache,
                namespace="vix_ttl.asgi" if namespace is None else namespace,
                **options,
            )
            # A response is kept for its own TTL: within the app's freshness, nothing if too large.
            # Without status=, statuses come with responses: recorded when stored, not per request.
            decorator = decorator.replace(
                entry_ttl=self._entry_ttl,
                stale_ok=_may_serve_stale,
                same=_same_response,
                records=status is not None,
            )
            self._cached = decorator(self._compute)
        except (TypeError, ValueError) as exc:  # said of the middleware, the name its user wrote
            said = str(exc).removeprefix("vix_cached").lstrip(": ")
            raise type(exc)(f"VixCacheMiddleware: {said}") from None
        self.breaker = self._cached.breaker
        self._clock = engine_of(self._cached).clock
        checked = decorator.options
        # Per mode, the RFC 5861 directives that follow max-age (the allowances of that mode).
        self._allowances = {
            mode: "".join(
                f", {name}={_whole(allowance[mode])}"
                for name, allowance in (
                    ("stale-while-revalidate", checked.stale_while_revalidate),
                    ("stale-if-error", checked.stale_if_error),
                )
                if allowance[mode]
            )
            for mode in Mode
        }
        # (scheme, host, raw path) -> the request headers its responses vary on
        self._vary: dict[tuple[bytes, bytes, bytes], tuple[str, ...]] = {}

    def cache_info(self) -> CacheInfo:
        """What happened to the requests so far, as ``vix_cached``'s ``cache_info()`` says it."""
        info: CacheInfo = self._cached.cache_info()
        return info

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, _saying(send, "bypass"))
            return
        headers = _http.request_headers(scope)
        said = _http.directives(headers.get(b"cache-control"))
        if "no-store" in said or _http.personal_request(headers) or _http.request_has_body(headers):
            # Asked not to keep it; someone's own (RFC 9111 3.5: a shared cache does not reuse a
            # response to a request with credentials); or a body the key does not hold: the app
            # answers, nobody keeps it, nobody else is answered with it.
            await self.app(scope, receive, _saying(send, "bypass", no_store=True))
            return
        request = _Request(scope, headers, receive, send)
        revalidate = self._revalidation and ("no-cache" in said or said.get("max-age") == "0")
        await self._answer(request, _http.request_key(scope, headers, self._vary), revalidate=revalidate)
        if request.rest is not None:
            await request.rest

    async def _answer(self, request: _Request, key: _http.Key, *, revalidate: bool = False) -> None:
        """Answer *request* from the cache or the application; what happened in ``X-Vix-Cache``."""
        token = _REQUEST.set(request)
        outcomes = OUTCOMES.set(request.outcomes)
        try:
            value = await self._call(request, key, revalidate)
            if value is None:  # answered already: the app's own response, passed on
                return
            wire = _wire(value, not self._in_process)
            if wire is None or self._outdated(request, key, value):
                # Served from the cache, it cannot go out: an entry of another shape (anyone may
                # write to a shared store), or one whose own status forbids serving it now (a
                # panic page another process, or this one long ago, kept). Computed afresh in
                # its place, as any bypass is.
                value = await self._call(request, key, revalidate=True)
                if value is None:
                    return
                wire = _wire(value, not self._in_process)
            if wire is None:  # planted again meanwhile: the app answers, nothing is kept
                await self.app(request.scope, request.receive, _saying(request.send, "bypass", no_store=True))
                return
        finally:
            OUTCOMES.reset(outcomes)
            _REQUEST.reset(token)
        await self._serve(request, value, wire, _SAID[_outcome(request)])

    def _outdated(self, request: _Request, key: _http.Key, value: dict[str, Any]) -> bool:
        """Header mode: whether a value served from the cache is one its own stored status
        forbids serving now (the engine judged the key by this process's memory of it, which
        another process's entry may contradict)."""
        if self._scope_status is not None or _outcome(request) not in _FROM_THE_CACHE:
            return False
        status = _STATUS_OF[value["vix_status"]]
        if status is self._stored_status(key):
            return False  # the status the engine judged it by
        return not self.breaker.ttl_for(status, self._base_of(status))

    async def _call(self, request: _Request, key: _http.Key, revalidate: bool) -> dict[str, Any] | None:
        """The cached value for *request* (*revalidate*: computed afresh), or None once it was
        answered otherwise.

        A response that is not kept is its leader's: one client's request may have caused it
        (a cookie, an error, a 404). The requests that waited on it elect a new leader once;
        they share that one's answer if it is nobody's own (a failing backend is asked twice,
        not once per request), else each runs the application itself.
        """
        for attempt in range(2):
            try:
                if revalidate:
                    return await self._revalidated(key)
                return await self._cached(key)
            except (_Passed, _AppFailed, _AppRaised) as passed:
                if passed.request is request:  # its own: as the application gave it
                    if isinstance(passed, _AppRaised):
                        raise passed.error from None
                    if passed.response is not None:  # not streamed to its client already
                        await self._send(request, passed.response, "bypass", no_store=True)
                    return None
                if attempt and passed.shareable and passed.response is not None:
                    await self._send(request, passed.response, "bypass", no_store=True)
                    return None
                if attempt:
                    await self.app(
                        request.scope, request.receive, _saying(request.send, "bypass", no_store=True)
                    )
                    return None
                # A new leader, keyed anew: the leader's response may have named new Vary headers.
                key = _http.request_key(request.scope, request.headers, self._vary)
        raise AssertionError("unreachable")

    async def _revalidated(self, key: _http.Key) -> dict[str, Any]:
        """A fresh response, computed once for every request that asks for one now, then kept in
        place of the entry: only once it succeeded, so a failing app leaves the fallback there."""
        value, _ = await self._revalidations.run(key, lambda: self._compute(key))
        token = _COMPUTED.set(value)
        try:
            await self._forget(key)
            return await self._cached(key)
        finally:
            _COMPUTED.reset(token)

    async def _forget(self, key: _http.Key) -> None:
        dropped = self._cached.invalidate(key)
        if inspect.isawaitable(dropped):  # a shared store's invalidate is a coroutine
            await dropped

    # -- the computation: the application, captured ------------------------------------

    async def _compute(self, key: _http.Key) -> dict[str, Any]:
        """Run the application for the request that leads; its response as a storable value."""
        computed = _COMPUTED.get()
        if computed is not None:  # a revalidation computed it already: it is kept as it is
            return computed
        request = _REQUEST.get()
        scope = _http.leader_scope(request.scope)  # HEAD is answered from the GET entry
        response = await self._capture(scope, request)
        if response.status >= 500:
            raise _AppFailed(request, response)
        if _http.personal(response):
            raise _Passed(request, response)
        if response.status != 200:  # never kept
            raise _Passed(request, response, shareable=True)
        varies = set(_http.vary_names(response) or ())
        if not varies <= set(key[4] or ()):
            # It varies on a request header its key lacks: keyed anew from the next request, by
            # every header this path's responses named (one naming fewer is kept under more:
            # two queries that vary differently never undo each other's keys).
            names = tuple(sorted(varies.union(key[4] or (), self._vary.get(key[:3]) or ())))
            _remember(self._vary, key[:3], _key_bytes(key[:3]), names)
            raise _Passed(request, response)
        if not _http.storable(response):
            # A public page the app forbids keeping: the page kept before it must not come back.
            await self._forget(key)
            raise _Passed(request, response, shareable=True)
        status = self._status_of(response, key)
        if status is None:  # an X-Vix-Status nobody can read: not kept
            raise _Passed(request, response)
        body = response.body
        headers = tuple((k, v) for k, v in response.headers if k not in _NOT_KEPT)
        shared, private = _http.freshness(response, time.time())
        # What an entry weighs in memory, its key included (a 60 KB query is 60 KB more).
        weight = len(body) + sum(len(k) + len(v) for k, v in headers) + _key_bytes(key) + _ENTRY_OVERHEAD
        if len(body) > self._max_body or (self._bounded and weight > self._max_bytes):
            shared = private = 0.0  # served, never kept
        return {
            "status": response.status,
            # In process, the bytes as they go out; a shared store's serializer gets text
            # (JSON has no bytes: latin-1 text took 4.1 times a body's size in Redis).
            **(
                {"headers": headers, "body": body}
                if self._in_process
                else {
                    "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers],
                    "body64": base64.b64encode(body).decode("ascii"),
                }
            ),
            "etag": _http.etag(body),
            "vix_status": status.value,
            # A bypassed response is kept all the same, for the NORMAL base (it replaces the
            # entry: what was served before a panic never comes back after it).
            "ttl": self.breaker.ttl_for(status, self._base_of(status)) or self._base,
            # The application's own freshness, for a shared cache and for a browser: an upper
            # bound, in what is kept and what is sent.
            "cap": shared,
            "private_cap": private,
            "revalidate": _http.must_revalidate(response),  # never served stale, here nor in front
            "at": self._clock(),
            **({"weight": weight} if self._in_process else {}),
        }

    def _entry_ttl(self, value: Any, decided: float) -> float:
        """How long a response is kept: its TTL (header mode: its own status's; else the call's),
        within what its application allows; 0, nothing, when it allows none or is too large."""
        if self._scope_status is not None:
            # Restated in max-age: a learned policy keeps each key for a TTL of its own.
            value["ttl"] = decided
        return min(float(value["ttl"]), float(value["cap"]))

    async def _capture(self, scope: Scope, request: _Request) -> _http.Response:
        """The application's response to *scope*; a streamed one goes on to the client as it comes.

        A body sent in several parts is a stream unless the response states its length and
        that length is at most ``max_body`` (a file, say): that one is captured whole. The
        application reads an empty request body (a body is its client's own: what it caused
        would be kept for everyone) and the leader's disconnect. A response it leaves
        unfinished, or whose body is not the length it states, is never kept: its leader gets
        it as the application gave it.
        """
        start: Message = {}
        chunks: list[bytes] = []
        answered: asyncio.Future[bool] = asyncio.get_running_loop().create_future()  # True: a stream
        foreground = not request.answered  # else a background refresh: no client, no disconnect
        head = request.scope["method"] == "HEAD"  # it is answered from a GET's response, bodiless
        stated, sized, received = None, -1, 0  # its Content-Length; the same when it may be kept

        async def capture(message: Message) -> None:
            nonlocal stated, sized, received
            if answered.done():  # a stream, going on to its client (or to nobody)
                if answered.result() and foreground:
                    await request.send({**message, "body": b""} if head else message)
            elif message["type"] == "http.response.start":
                start.update(message)
                stated = _stated_length(message.get("headers", []))
                sized = stated if stated is not None and stated <= self._max_body else -1
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                received += len(chunks[-1])
                if not message.get("more_body", False):
                    answered.set_result(False)
                elif received > sized:  # a stream: never kept, its client gets it as it comes
                    answered.set_result(True)
                    if foreground:
                        await self._pass_on(request, start, chunks, head)

        # The application runs in a task of its own: a stream goes on after this returns,
        # so that callers who joined run the application themselves at once.
        receive = _bodiless(request.receive if foreground else _never)
        call = asyncio.ensure_future(self.app(scope, receive, capture))
        waited: set[asyncio.Future[Any]] = {call, answered}
        await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        if not answered.done():
            try:
                await call  # it raised, or ended without finishing its response
            except Exception as error:
                raise _AppRaised(request, error) from error
            if foreground and start:
                await self._pass_on(request, start, chunks, head)
            raise _Passed(request, None)
        if foreground:
            request.rest = call  # the leading request waits for it at its end
        elif answered.result():
            call.cancel()  # a refresh that met a stream: nobody to send it to
        else:
            await call
        if answered.result():
            raise _Passed(request, None)
        headers = [(k.lower(), v) for k, v in start.get("headers", [])]
        response = _http.Response(start.get("status", 500), headers, b"".join(chunks))
        if stated is not None and stated != received:  # the app's mistake: its server says so
            raise _Passed(request, response)
        return response

    @staticmethod
    async def _pass_on(request: _Request, start: Message, chunks: list[bytes], head: bool) -> None:
        """Send the leader the start of a response that is not kept, and its body so far."""
        request.answered = True
        await _saying(request.send, "bypass", no_store=True)(start)
        for chunk in chunks:
            await request.send(
                {"type": "http.response.body", "body": b"" if head else chunk, "more_body": True}
            )

    def _status_of(self, response: _http.Response, key: Any) -> VixStatus | None:
        """The status a stored response carries: the request's, or the app's header (recorded);
        None for a header that names no status (logged: the response is not kept)."""
        if self._scope_status is not None:
            return self._request_status(key)
        stated = (response.header(STATUS_HEADER.encode()) or b"normal").decode("latin-1")
        try:
            status = VixStatus.coerce(stated.strip().lower())
        except ValueError as exc:
            _log.warning("asgi_status_unreadable", header=stated[:100], error=str(exc))
            return None
        self.breaker.record(status)
        _remember(self._seen, key, _key_bytes(key), status)
        return status

    def _request_status(self, key: Any) -> VixStatus:
        request = _REQUEST.get()
        if request.status is None:
            request.status = self._checked(self._scope_status(request.scope), "status(scope)")  # type: ignore[misc]
        return request.status

    def _stored_status(self, key: Any) -> VixStatus:
        return self._seen.get(key, VixStatus.NORMAL)

    def _checked(self, status: Any, where: str) -> VixStatus:
        try:
            return VixStatus.coerce(status)
        except ValueError as exc:
            raise ValueError(f"VixCacheMiddleware: {where} gave {exc}") from None

    def _base_of(self, status: VixStatus) -> float:
        return self._bases[status]

    # -- the response: headers a CDN computes the same freshness from -------------------

    async def _serve(
        self,
        request: _Request,
        value: dict[str, Any],
        wire: tuple[tuple[tuple[bytes, bytes], ...], bytes],
        said: str,
    ) -> None:
        """Send a cached *value* (as *wire*: its headers and body in bytes) with the headers of now."""
        # The TTL decided now: for this request's status, or the stored one's (header mode);
        # within what the application allows.
        status = request.status or _STATUS_OF[value["vix_status"]]
        decided, mode = self.breaker.ttl_and_mode(status, self._base_of(status))
        fresh_for = min(value["ttl"], decided, value["cap"]) if said != "bypass" else 0.0
        stored, body = wire
        etag = value["etag"]
        headers = [*stored, (b"etag", etag.encode())]
        if not fresh_for:  # computed, and not kept: bypassed, or not for keeping
            said = "bypass"
            headers.append((b"cache-control", b"no-store"))
        else:
            # A browser keeps it no longer than the app lets one; a CDN as long as this cache.
            private = min(fresh_for, value.get("private_cap", fresh_for))
            ages = f"max-age={_whole(private)}"
            if private < fresh_for:
                ages += f", s-maxage={_whole(fresh_for)}"
            # The app forbids serving it stale: no allowance is offered in front either.
            then = ", must-revalidate" if value.get("revalidate") else self._allowances[mode]
            headers.append((b"cache-control", f"{ages}{then}".encode()))
            # Rounded up, that a cache in front never believes it fresher than it is; 0 when
            # computed for this very request.
            age = math.ceil(self._clock() - value["at"]) if said in _SERVED else 0
            headers.append((b"age", str(max(0, age)).encode()))
        if _http.matches(request.headers.get(b"if-none-match"), etag):
            await _respond(request, 304, headers, b"", said)
            return
        headers.append((b"content-length", str(len(body)).encode()))
        await _respond(request, value["status"], headers, body, said)

    async def _send(
        self, request: _Request, response: _http.Response, said: str, *, no_store: bool = False
    ) -> None:
        dropped = {
            STATUS_HEADER.encode(),
            b"x-vix-cache",
            *_HOP_BY_HOP,
            *((b"cache-control",) if no_store else ()),
        }
        headers = [(k, v) for k, v in response.headers if k not in dropped]  # its own length too
        if no_store:
            headers.append((b"cache-control", b"no-store"))
        await _respond(request, response.status, headers, response.body, said)


# Per-path and per-key memories are bounded: the oldest go first, and a key longer than
# _REMEMBERED_BYTES is not remembered (65,536 keys of a hostile 60 KB path would be 4 GB).
_REMEMBERED = 65536
_REMEMBERED_BYTES = 2048
_log = get_logger(__name__)
# What an entry of the default store costs beyond its bytes: the dicts and tuples holding it
# (1.5 KB measured with tracemalloc for a small page).
_ENTRY_OVERHEAD = 1536


_OWN_ARGUMENTS = [
    name
    for name in inspect.signature(VixCacheMiddleware.__init__).parameters
    if name not in ("self", "options")
]
"""The middleware's own arguments (its errors list them before ``CacheOptions``)."""


def _outcome(request: _Request) -> Outcome:
    """What happened to *request*'s last call (a hit, on its fast path, counts nothing here)."""
    return request.outcomes[-1] if request.outcomes else Outcome.HIT


def _remember(memory: dict[Any, Any], key: Any, size: int, value: Any) -> None:
    """*memory*[*key*] = *value* (None forgets it), *key* weighing *size* bytes."""
    memory.pop(key, None)
    if value is not None and size <= _REMEMBERED_BYTES:
        memory[key] = value
        if len(memory) > _REMEMBERED:
            del memory[next(iter(memory))]


def _entry_bytes(entry: Any) -> int:
    """What an entry of the default store weighs: body, headers and key, a little for the rest."""
    value = entry.value if entry.__class__ is Entry else entry
    try:
        return int(value["weight"])
    except (TypeError, KeyError, ValueError):
        return _ENTRY_OVERHEAD


def _key_bytes(parts: tuple[Any, ...]) -> int:
    """What a key, or a part of one, holds in bytes: what remembering it costs."""
    return sum(
        len(part) if isinstance(part, bytes | str) else _key_bytes(part) if isinstance(part, tuple) else 0
        for part in parts
    )


def _whole(seconds: float) -> int:
    """Seconds as a header states them: whole, a year at most ("forever" is a year: a longer
    number says no more to a cache, and 1e308 would take 309 digits)."""
    return math.floor(min(seconds, _http.FOREVER))


def _same_response(value: Any, before: Any) -> bool:
    """Whether a response is the one it replaces, as a learning policy counts changes: the
    same status and body (its ETag), whenever each was stored."""
    return bool(value["status"] == before["status"] and value["etag"] == before["etag"])


def _may_serve_stale(value: Any) -> bool:
    """Whether a kept response may be served past its freshness (``stale_while_revalidate``,
    ``stale_if_error``): not when its application said ``must-revalidate``."""
    return isinstance(value, dict) and value.get("revalidate") is not True


def _wire(value: Any, shared: bool) -> tuple[tuple[tuple[bytes, bytes], ...], bytes] | None:
    """A cached value's headers and body as bytes. In process, the value ``_compute`` kept
    (nobody else writes there); from a *shared* store, anything anyone wrote: None unless it
    has the shape ``_compute`` gives, with numbers in range and headers that can neither
    split the response nor restate the middleware's own."""
    try:
        if not shared:  # a value of another shape is someone's mistake, never an attack
            headers, body = value["headers"], value["body"]
            return (headers, body) if headers.__class__ is tuple and body.__class__ is bytes else None
        if not (
            value["status"].__class__ is int
            and 200 <= value["status"] <= 599
            and _http.is_etag(value["etag"])
            and value["vix_status"] in _STATUS_OF
            and _span(value["ttl"])
            and _span(value["cap"])
            and _span(value.get("private_cap", 0))
            and _span(value["at"], forever=False)
            and value.get("revalidate", False).__class__ is bool
            and value["headers"].__class__ is list
        ):
            return None
        headers = tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in value["headers"])
        if not all(_http.safe_header(k, v) and k not in _NOT_KEPT for k, v in headers):
            return None
        return headers, base64.b64decode(value["body64"], validate=True)
    except (KeyError, TypeError, ValueError, AttributeError):  # UnicodeEncodeError is a ValueError
        return None


def _span(seconds: Any, *, forever: bool = True) -> bool:
    """Whether *seconds* is a number of seconds a value may hold: >= 0, not NaN, ``inf`` only
    where it means "forever"."""
    return seconds.__class__ in _NUMBERS and seconds >= 0 and (forever or seconds != math.inf)


def _stated_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The ``Content-Length`` a response states (None: none, or not a number)."""
    for key, value in headers:
        if key.lower() == b"content-length":
            stated = value.strip()
            return int(stated) if stated.isdigit() else None
    return None


async def _respond(
    request: _Request, status: int, headers: list[tuple[bytes, bytes]], body: bytes, said: str
) -> None:
    request.answered = True
    headers.append((b"x-vix-cache", said.encode()))
    await request.send({"type": "http.response.start", "status": status, "headers": headers})
    head = request.scope["method"] == "HEAD" or status == 304
    await request.send({"type": "http.response.body", "body": b"" if head else body, "more_body": False})


def _saying(send: Send, said: str, *, no_store: bool = False) -> Send:
    """*send*, adding ``X-Vix-Cache: said`` to the response it starts (and ``no-store``)."""
    # The app's own X-Vix-Cache would contradict ours (or pretend a page was a hit).
    dropped = {STATUS_HEADER.encode(), b"x-vix-cache", *((b"cache-control",) if no_store else ())}
    ours = [(b"x-vix-cache", said.encode())] + [(b"cache-control", b"no-store")] * no_store

    async def saying(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in dropped]
            message = {**message, "headers": [*headers, *ours]}
        await send(message)

    return saying


def _bodiless(receive: Receive) -> Receive:
    """*receive* as a computation reads it: an empty body, then what comes after the body
    (the leader's disconnect). A GET's body is its client's own, never in what is kept."""
    given = False

    async def bodiless() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message

    return bodiless


async def _never() -> Message:
    """A background refresh's client: none, so nobody disconnects (an app listening waits)."""
    await asyncio.Event().wait()  # never set
    raise AssertionError("unreachable")
