"""``VixCacheMiddleware``: vix_ttl's decisions for whole HTTP responses, as pure ASGI (DESIGN 7b).

A GET is one call of a ``@vix_cached`` coroutine whose key is the request's path,
sorted query string and the request headers the response varies on, and whose
computation runs the application and captures its response: the same stores,
keys, signing, coalescing and stale rules as ``vix_cached``, on the same clock.
What HTTP adds lives here: which responses may be kept, the status from the
request (``status(scope)``) or from the application (``X-Vix-Status``), and the
RFC 9111 / RFC 5861 headers that let a CDN or a browser in front compute the
same freshness (``max-age`` - ``Age``).

Responses that must never be shared — ``Set-Cookie``, ``Cache-Control: private``
or ``no-store``, ``Vary: *``, streamed ones — end the computation with
``_Passed``, a ``BaseException``: the engine neither stores it nor serves a stale
entry instead, and callers that joined the computation run the application
themselves, so one client's cookie never reaches another.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl

import structlog

from vix_ttl._checks import check_ttl
from vix_ttl._engine import (
    BYPASS,
    COALESCED,
    ERROR,
    HIT,
    MISS,
    OUTCOMES,
    REJECTED,
    SERVED_ON_ERROR,
    SERVED_STALE,
    STALE,
    CacheInfo,
)
from vix_ttl._proxy import engine_of
from vix_ttl._signing import Secret
from vix_ttl.decorator import Decorate, vix_cached
from vix_ttl.mode import Mode
from vix_ttl.policy import PANIC_BASE_TTL
from vix_ttl.status import VixStatus

__all__ = ["STATUS_HEADER", "VixCacheMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STATUS_HEADER = "x-vix-status"
"""The response header an application states its data's status in (stripped before it leaves)."""

# X-Vix-Cache: what happened to a request, from the outcome its call was counted under.
_SAID = {
    HIT: "hit",
    MISS: "miss",
    STALE: "stale",
    BYPASS: "bypass",
    COALESCED: "miss",
    ERROR: "error",
    REJECTED: "miss",
    SERVED_STALE: "revalidating",
    SERVED_ON_ERROR: "fallback",
}
# Headers this middleware states itself, or that describe one connection only.
_OWN = frozenset(
    {b"cache-control", b"age", b"etag", b"x-vix-cache", STATUS_HEADER.encode(), b"content-length"}
)
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"})


@dataclass
class _Request:
    """One request, as the computation it may lead needs it."""

    scope: Scope
    receive: Receive
    send: Send
    answered: bool = False
    """Its response has begun: a background refresh it started must not write to it."""
    outcomes: list[str] = field(default_factory=list)
    status: VixStatus | None = None
    """What ``status(scope)`` said of it (status mode)."""
    rest: asyncio.Future[None] | None = None
    """The application's call, still running for this request: a stream it forwards, or
    what the application does after its response (background tasks); awaited last."""


_REQUEST: ContextVar[_Request] = ContextVar("vix_ttl_asgi_request")


class _Response:
    """A response as the application gave it: status, headers, one body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def header(self, name: bytes) -> bytes | None:
        """Every line of header *name*, joined as one list (RFC 9110 5.3), or None."""
        values = [value for key, value in self.headers if key == name]
        return b", ".join(values) if values else None


class _Passed(BaseException):
    """A response that must not be stored nor shared (or was streamed to its client already)."""

    def __init__(self, request: _Request, response: _Response | None) -> None:
        super().__init__()
        # The request whose computation it was: the only one the response is for.
        self.request, self.response = request, response


class _AppFailed(Exception):  # noqa: N818 - carries the response, not a failure of ours
    """The application answered 5xx: a failed computation (``stale_if_error``), never stored."""

    def __init__(self, request: _Request, response: _Response) -> None:
        super().__init__(f"the application answered {response.status}")
        self.request, self.response = request, response
        # An error page may go to every caller that waited on it, unless it is someone's.
        self.shareable = _personal(response) is False


class VixCacheMiddleware:
    """Cache 200 responses to GET (HEAD answered from them) with vix_ttl's adaptive TTLs.

    Args:
        app: The ASGI application.
        ttl: Base TTL in seconds for NORMAL status (``None``: never expires).
        status: A callable of the request's ASGI ``scope`` returning its status, recorded
            per request; None: the application's ``X-Vix-Status`` response header,
            recorded when the response is stored, judges later requests.
        breaker, cache, namespace, stale_while_revalidate, stale_if_error, secret, clock:
            As for ``vix_cached`` (``namespace`` default: ``"vix_ttl.asgi"``).

    Raises:
        TypeError, ValueError: an argument out of range, as ``vix_cached`` says.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        ttl: float | None,
        status: Callable[[Scope], VixStatus | str] | None = None,
        breaker: Any = None,
        cache: Any = None,
        namespace: str | None = None,
        stale_while_revalidate: float | Mapping[Mode | str, float] = 0,
        stale_if_error: float | Mapping[Mode | str, float] = 0,
        secret: Secret | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not callable(app):
            raise TypeError(f"VixCacheMiddleware: app must be an ASGI application, got {app!r}")
        if status is not None and not callable(status):
            raise TypeError(f"VixCacheMiddleware: status must be a callable of the scope, got {status!r}")
        if cache is not None and namespace is None:
            raise TypeError(
                "VixCacheMiddleware over a cache of yours needs namespace= (a name for this service): "
                "two services sharing the store would otherwise serve each other's pages"
            )
        self.app = app
        self._base = check_ttl("ttl", ttl)
        self._scope_status = status
        self._seen: dict[Any, VixStatus] = {}  # header mode: each key's last stored status
        decorate = vix_cached(
            ttl,
            status=self._request_status if status is not None else self._stored_status,
            breaker=breaker,
            cache=cache,
            namespace="vix_ttl.asgi" if namespace is None else namespace,
            stale_while_revalidate=stale_while_revalidate,
            stale_if_error=stale_if_error,
            secret=secret,
            clock=clock,
        )
        assert isinstance(decorate, Decorate)
        options = decorate.options_for(self._compute)
        if status is None:  # statuses come with responses: recorded when stored, not per request
            options = replace(options, records=False, entry_ttl=_stored_ttl)
        self._cached = decorate.build(self._compute, options)
        self.breaker = self._cached.breaker
        engine = engine_of(self._cached)
        self._clock = engine.clock
        # Per mode, the RFC 5861 directives that follow max-age (the allowances of that mode).
        self._allowances = {
            mode: "".join(
                f", {name}={math.floor(allowance[mode])}"
                for name, allowance in (
                    ("stale-while-revalidate", options.stale_while_revalidate),
                    ("stale-if-error", options.stale_if_error),
                )
                if allowance[mode]
            )
            for mode in Mode
        }
        # (host, path) -> the request headers its responses vary on
        self._vary: dict[tuple[str, str], tuple[str, ...]] = {}

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
        directives = _directives(_request_header(scope, b"cache-control"))
        if "no-store" in directives or _personal_request(scope):
            # Asked not to keep it, or someone's own (RFC 9111 3.5: a shared cache does not
            # reuse a response to a request with credentials): the app answers, nobody keeps it.
            await self.app(scope, receive, _saying(send, "bypass", no_store=True))
            return
        if "no-cache" in directives:  # recomputed for this client; the entry stays for the others
            await self.app(scope, receive, _saying(send, "miss"))
            return
        request = _Request(scope, receive, send)
        await self._answer(request, self._key(scope))
        if request.rest is not None:
            await request.rest

    async def _answer(self, request: _Request, key: _Key) -> None:
        """Answer *request* from the cache or the application; what happened in ``X-Vix-Cache``."""
        token = _REQUEST.set(request)
        outcomes = OUTCOMES.set(request.outcomes)
        try:
            try:
                value = await self._cached(key)
            except _Passed as passed:
                if passed.request is not request:  # another client's response: run the app for this one
                    await self.app(request.scope, request.receive, _saying(request.send, "miss"))
                    return
                # Served in place of the stored page, which must not come back after it.
                await self._forget(key)
                if passed.response is not None:  # not streamed to its client already
                    said = _SAID[request.outcomes[-1]] if request.outcomes else "miss"
                    await self._send(request, passed.response, said)
                return
            except _AppFailed as failed:
                if failed.request is request or failed.shareable:
                    await self._send(request, failed.response, "miss", no_store=True)
                else:
                    await self.app(request.scope, request.receive, _saying(request.send, "miss"))
                return
            wire = _wire(value)
            if wire is None:  # an entry in a shared store nobody signed, of another shape
                await self._forget(key)
                await self.app(request.scope, request.receive, _saying(request.send, "miss"))
                return
        finally:
            OUTCOMES.reset(outcomes)
            _REQUEST.reset(token)
        said = _SAID[request.outcomes[-1]] if request.outcomes else "hit"
        await self._serve(request, value, wire, said)

    async def _forget(self, key: _Key) -> None:
        dropped = self._cached.invalidate(key)
        if inspect.isawaitable(dropped):  # a shared store's invalidate is a coroutine
            await dropped

    # -- the computation: the application, captured ------------------------------------

    async def _compute(self, key: Any) -> dict[str, Any]:
        """Run the application for the request that leads; its response as a storable value."""
        request = _REQUEST.get()
        scope = dict(request.scope, method="GET")  # HEAD is answered from the GET entry
        response = await self._capture(scope, request)
        if response.status >= 500:
            raise _AppFailed(request, response)
        varies = _vary_names(response)
        if varies != key[3]:  # the request headers it varies on changed: keyed anew from the next request
            _remember(self._vary, (key[0], scope["path"]), varies)
        if _personal(response) is not False or varies != key[3]:
            raise _Passed(request, response)
        status = self._status_of(response, key)
        if status is None:  # an X-Vix-Status nobody can read: not kept
            raise _Passed(request, response)
        body = response.body
        return {
            "status": response.status,
            "headers": [
                [k.decode("latin-1"), v.decode("latin-1")] for k, v in response.headers if k not in _OWN
            ],
            "body": body.decode("latin-1"),  # JSON-safe and byte-exact; shared stores serialize it
            "etag": '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
            "vix_status": status.value,
            # A bypassed response is kept all the same, for the NORMAL base (it replaces the
            # entry: what was served before a panic never comes back after it).
            "ttl": self.breaker._judge(status, self._base_of(status)) or self._base,
            "at": self._clock(),
        }

    async def _capture(self, scope: Scope, request: _Request) -> _Response:
        """The application's response to *scope*; a streamed one goes on to the client as it comes."""
        start: Message = {}
        chunks: list[bytes] = []
        answered: asyncio.Future[bool] = asyncio.get_running_loop().create_future()  # True: a stream
        foreground = not request.answered  # else a background refresh: no client, no request body

        async def capture(message: Message) -> None:
            if answered.done():  # a stream, going on to its client (or to nobody)
                if answered.result() and foreground:
                    await request.send(message)
            elif message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):  # a stream: never kept, its client gets it as it comes
                    answered.set_result(True)
                    if foreground:
                        request.answered = True
                        await _saying(request.send, "miss")(start)
                        for chunk in chunks:
                            await request.send(
                                {"type": "http.response.body", "body": chunk, "more_body": True}
                            )
                else:
                    answered.set_result(False)

        # The application runs in a task of its own: a stream goes on after this returns,
        # so that callers who joined run the application themselves at once.
        call = asyncio.ensure_future(self.app(scope, request.receive if foreground else _no_body(), capture))
        waited: set[asyncio.Future[Any]] = {call, answered}
        await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        if not answered.done():
            await call  # it raised, or ended without a response
        elif foreground:
            request.rest = call  # the leading request waits for it at its end
        elif answered.result():
            call.cancel()  # a refresh that met a stream: nobody to send it to
        else:
            await call
        if answered.done() and answered.result():
            raise _Passed(request, None)
        headers = [(k.lower(), v) for k, v in start.get("headers", [])]
        return _Response(start.get("status", 500), headers, b"".join(chunks))

    def _status_of(self, response: _Response, key: Any) -> VixStatus | None:
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
        _remember(self._seen, key, status)
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
        return PANIC_BASE_TTL if status is VixStatus.PANIC else self._base

    # -- the response: headers a CDN computes the same freshness from -------------------

    async def _serve(
        self,
        request: _Request,
        value: dict[str, Any],
        wire: tuple[list[tuple[bytes, bytes]], bytes],
        said: str,
    ) -> None:
        """Send a cached *value* (as *wire*: its headers and body in bytes) with the headers of now."""
        # The TTL decided now: for this request's status, or the stored one's (header mode).
        status = request.status or VixStatus(value["vix_status"])
        decided = self.breaker._judge(status, self._base_of(status))
        fresh_for = min(value["ttl"], decided) if said != "bypass" else 0.0
        if not fresh_for:  # computed, and not kept: its own status is bypassed (header mode)
            said = "bypass"
        age = max(0, math.floor(self._clock() - value["at"]))
        headers, body = wire
        headers.append((b"etag", value["etag"].encode()))
        headers.append((b"cache-control", self._cache_control(fresh_for).encode()))
        if fresh_for:
            headers.append((b"age", str(age).encode()))
        if _matches(_request_header(request.scope, b"if-none-match"), value["etag"]):
            await _respond(request, 304, headers, b"", said)
            return
        await _respond(request, value["status"], [*headers, _length(body)], body, said)

    async def _send(
        self, request: _Request, response: _Response, said: str, *, no_store: bool = False
    ) -> None:
        headers = [(k, v) for k, v in response.headers if k != STATUS_HEADER.encode()]  # its own length too
        if no_store:
            headers = [(k, v) for k, v in headers if k != b"cache-control"] + [
                (b"cache-control", b"no-store")
            ]
        await _respond(request, response.status, headers, response.body, said)

    def _cache_control(self, fresh_for: float) -> str:
        if not fresh_for:
            return "no-store"
        max_age = (
            math.floor(fresh_for) if math.isfinite(fresh_for) else 31536000
        )  # a year: RFC 9111's "never"
        return f"max-age={max_age}{self._allowances[self.breaker.mode]}"

    # -- keys --------------------------------------------------------------------------

    def _key(self, scope: Scope) -> _Key:
        """Host, path, the query sorted by name (repeated names keep their order: ``a=2&a=1`` is not
        ``a=1&a=2``), the headers the path's responses vary on, and the request's values of them
        (an absent header is None, apart from an empty one)."""
        host = (_request_header(scope, b"host") or b"").decode("latin-1").lower()
        path = scope.get("root_path", "") + scope["path"]
        raw = scope.get("query_string", b"")
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True) if raw else []
        query = tuple(sorted(pairs, key=lambda pair: pair[0]))
        names = self._vary.get((host, scope["path"]))
        values = tuple(_header_value(scope, name) for name in names or ())
        return host, path, query, names, values


_Key = tuple[str, str, tuple[tuple[str, str], ...], tuple[str, ...] | None, tuple[str | None, ...]]
_REMEMBERED = 65536  # per-path and per-key memories are bounded: the oldest go first
_log = structlog.get_logger("vix_ttl")


def _remember(memory: dict[Any, Any], key: Any, value: Any) -> None:
    """*memory*[*key*] = *value* (None forgets it), keeping at most ``_REMEMBERED`` keys."""
    memory.pop(key, None)
    if value is not None:
        memory[key] = value
        if len(memory) > _REMEMBERED:
            del memory[next(iter(memory))]


def _header_value(scope: Scope, name: str) -> str | None:
    value = _request_header(scope, name.encode())
    return None if value is None else value.decode("latin-1")


def _personal_request(scope: Scope) -> bool:
    """A request with credentials: what it gets may be this client's only."""
    return (
        _request_header(scope, b"authorization") is not None or _request_header(scope, b"cookie") is not None
    )


def _wire(value: Any) -> tuple[list[tuple[bytes, bytes]], bytes] | None:
    """A cached value's headers and body as bytes; None if it lacks the shape ``_compute``
    gives (a shared store may hold anything). One pass: what the response needs anyway."""
    try:
        if not (
            isinstance(value["status"], int)
            and isinstance(value["etag"], str)
            and value["vix_status"] in _STATUSES
            and all(type(value[name]) in (int, float) for name in ("ttl", "at"))
        ):
            return None
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in value["headers"]]
        return headers, value["body"].encode("latin-1")
    except (KeyError, TypeError, ValueError, AttributeError):  # UnicodeEncodeError is a ValueError
        return None


_STATUSES = frozenset(status.value for status in VixStatus)


def _stored_ttl(value: Any, decided: float) -> float:
    """Header mode: a response is kept for the TTL its own status decided when it was computed."""
    return float(value["ttl"])


def _personal(response: _Response) -> bool | None:
    """Whether *response* is someone's own (``Set-Cookie``, ``private``, ``no-store``, ``Vary: *``);
    None when it is not a 200, which is kept by nobody either."""
    directives = _directives(response.header(b"cache-control"))
    if response.header(b"set-cookie") is not None or {"private", "no-store"} & directives:
        return True
    if "*" in (_vary_names(response) or ()):
        return True
    return None if response.status != 200 else False


def _vary_names(response: _Response) -> tuple[str, ...] | None:
    """The request headers *response* varies on, lower case and sorted (None: it names none)."""
    names = {
        n.strip().lower() for k, v in response.headers if k == b"vary" for n in v.decode("latin-1").split(",")
    }
    names.discard("")
    return tuple(sorted(names)) if names else None


def _directives(header: bytes | None) -> set[str]:
    if not header:
        return set()
    return {
        part.split("=", 1)[0].strip().lower() for part in header.decode("latin-1").split(",") if part.strip()
    }


def _request_header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value)
    return None


def _matches(if_none_match: bytes | None, etag: str) -> bool:
    """RFC 9110 13.1.2: weak comparison, a list of tags, or ``*``."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.decode("latin-1").split(",")]
    return "*" in tags or etag in tags


def _length(body: bytes) -> tuple[bytes, bytes]:
    return b"content-length", str(len(body)).encode()


async def _respond(
    request: _Request, status: int, headers: list[tuple[bytes, bytes]], body: bytes, said: str
) -> None:
    request.answered = True
    headers = [(k, v) for k, v in headers if k not in _HOP_BY_HOP] + [(b"x-vix-cache", said.encode())]
    await request.send({"type": "http.response.start", "status": status, "headers": headers})
    head = request.scope["method"] == "HEAD" or status == 304
    await request.send({"type": "http.response.body", "body": b"" if head else body, "more_body": False})


def _saying(send: Send, said: str, *, no_store: bool = False) -> Send:
    """*send*, adding ``X-Vix-Cache: said`` to the response it starts (and ``no-store``)."""
    dropped = {STATUS_HEADER.encode(), b"cache-control"} if no_store else {STATUS_HEADER.encode()}
    ours = [(b"x-vix-cache", said.encode())] + [(b"cache-control", b"no-store")] * no_store

    async def saying(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in dropped]
            message = {**message, "headers": [*headers, *ours]}
        await send(message)

    return saying


def _no_body() -> Receive:
    """The request a computation reads: a GET has no body, and no client disconnects from it."""
    given = False

    async def receive() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # never set: an application listening for a disconnect waits
        raise AssertionError("unreachable")

    return receive
