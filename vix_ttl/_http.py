"""What HTTP says about caching (RFC 9110, 9111, 5861), for the ASGI middleware: no I/O here.

Which requests a shared cache may answer, which responses it may keep and for how
long, the key a request is answered under, ETags and conditional requests, and the
freshness headers a CDN or browser in front computes the same freshness from. Each
rule is a function of the request's ASGI scope or of a response's status, headers
and body; ``vix_ttl.asgi`` runs the requests.
"""

from __future__ import annotations

import email.utils
import hashlib
import math
import re
import urllib.parse
from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = [
    "FOREVER",
    "Headers",
    "Key",
    "Response",
    "Vary",
    "directives",
    "etag",
    "freshness",
    "is_etag",
    "leader_scope",
    "matches",
    "must_revalidate",
    "personal",
    "personal_request",
    "request_has_body",
    "request_headers",
    "request_key",
    "safe_header",
    "storable",
    "vary_names",
]

Scope = MutableMapping[str, Any]

FOREVER = 31536000
"""A year, in seconds: RFC 9111's "never expires" for ``max-age``."""

Vary = tuple[str, ...]
Key = tuple[bytes, bytes, bytes, tuple[bytes, ...], Vary | None, tuple[bytes | None, ...]]
"""What a request is answered under: scheme, host, raw path, query parameters (raw, sorted
by name, repeated names in their order), the request headers its responses vary on and the
request's values of them (an absent header is None, apart from an empty one)."""

# A request's conditions and ranges are each client's: the computation shared by every
# client runs without them, and each client is answered from its full response.
_CLIENT_ONLY = frozenset(
    {b"range", b"if-range", b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since"}
)
# Server extensions that send a response in a way a capture never sees (a file sent by the
# server, early hints, trailers): removed from the scope of a computation to be kept.
_UNCAPTURABLE = frozenset(
    {
        "http.response.pathsend",
        "http.response.zerocopysend",
        "http.response.early_hint",
        "http.response.trailers",
    }
)


class Response:
    """A response as the application gave it: status, headers (names lower case), one body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def header(self, name: bytes) -> bytes | None:
        """Every line of header *name*, joined as one list (RFC 9110 5.3), or None."""
        values = [value for key, value in self.headers if key == name]
        return b", ".join(values) if values else None


Headers = dict[bytes, bytes]
"""A request's headers by name: ASGI gives names in lower case."""


def request_headers(scope: Scope) -> Headers:
    """The request's headers, a repeated one's lines joined as one list (RFC 9110 5.3)."""
    listed = list(scope.get("headers", ()))
    found: Headers = dict(listed)
    if len(found) != len(listed):  # a header sent twice: all of it, never its last line alone
        found = {}
        for name, value in listed:
            found[name] = found[name] + b", " + value if name in found else value
    return found


def directives(header: bytes | None) -> dict[str, str | None]:
    """A ``Cache-Control`` header's directives: name (lower case) -> value (None: none given)."""
    found: dict[str, str | None] = {}
    for part in (header or b"").decode("latin-1").split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip().lower()
        if name and name not in found:  # a directive given twice: its first (RFC 9111 4.2.1)
            found[name] = value.strip().strip('"') if sep else None
    return found


def personal_request(headers: Headers) -> bool:
    """A request with credentials: what it gets may be this client's only (RFC 9111 3.5)."""
    return b"authorization" in headers or b"cookie" in headers


def request_has_body(headers: Headers) -> bool:
    """A request that carries a body (a GET may): its response may depend on it, and the key
    does not hold it, so it is never answered from the cache nor shared."""
    length = headers.get(b"content-length")
    return b"transfer-encoding" in headers or (length is not None and length.strip() not in (b"", b"0"))


def request_key(scope: Scope, headers: Headers, varies: Mapping[tuple[bytes, bytes, bytes], Vary]) -> Key:
    """The key of a request, its bytes as sent: no lossy decoding (``?x=%FF`` is not ``?x=%FE``,
    ``?flag`` is not ``?flag=``, ``/a%2Fb`` is not ``/a/b``, ``;`` separates nothing).
    *varies*: per (scheme, host, raw path), the request headers its responses vary on."""
    place = (
        scope.get("scheme", "http").encode(),
        headers.get(b"host", b"").lower(),
        bytes(scope.get("raw_path") or (scope.get("root_path", "") + scope["path"]).encode("utf-8")),
    )
    raw_query = scope.get("query_string", b"")
    query = ()
    if raw_query:  # sorted by name as the app reads it, stably: repeated names keep their order
        query = tuple(sorted(raw_query.split(b"&"), key=_name_read))
    vary = varies.get(place)
    values = tuple(headers.get(name.encode("latin-1")) for name in vary) if vary else ()
    return *place, query, vary, values


def _name_read(parameter: bytes) -> bytes:
    """A query parameter's name as an application decodes it (``%61`` is ``a``, ``+`` a space):
    two spellings of one name keep their order, as the application would read them. Names
    that decode beyond ASCII share one place (an app reads ``%FF`` and ``%FE`` both as U+FFFD):
    among themselves they keep their order."""
    name = parameter.partition(b"=")[0]
    if b"%" in name or b"+" in name:
        name = urllib.parse.unquote_to_bytes(name.replace(b"+", b" "))
    return name if name.isascii() else _BEYOND_ASCII


_BEYOND_ASCII = b"\x80"  # after every ASCII name


def safe_header(name: bytes, value: bytes) -> bool:
    """Whether a header read from a shared store may go out: a token for a name, and a value
    without a line break or NUL (anyone can write to a shared store)."""
    return _TOKEN.fullmatch(name) is not None and _UNSAFE_VALUE.search(value) is None


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_UNSAFE_VALUE = re.compile(rb"[\r\n\x00]")


def leader_scope(scope: Scope) -> dict[str, Any]:
    """The scope a shared computation runs with: a GET, without the client's own conditions and
    ranges, and without the server extensions a capture cannot see."""
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in _CLIENT_ONLY]
    shared = dict(scope, method="GET", headers=headers)
    extensions = scope.get("extensions")
    if extensions:
        shared["extensions"] = {k: v for k, v in extensions.items() if k not in _UNCAPTURABLE}
    return shared


def personal(response: Response) -> bool:
    """Whether *response* is one client's own, never to be handed to another: ``Set-Cookie``,
    ``private``, or ``Vary: *``."""
    said = directives(response.header(b"cache-control"))
    if response.header(b"set-cookie") is not None or "private" in said:
        return True
    return "*" in (vary_names(response) or ())


def storable(response: Response) -> bool:
    """Whether the application lets a shared cache keep *response* at all: not ``no-store``."""
    return "no-store" not in directives(response.header(b"cache-control"))


def freshness(response: Response, now: float) -> tuple[float, float]:
    """How long *response* stays fresh from now, as its application says, for a shared cache and
    for a browser: ``s-maxage`` (shared only), else ``max-age``, else ``Expires`` less ``Date``,
    less the ``Age`` it already has; 0 for ``no-cache``; ``inf`` if it says none (RFC 9111 4.2).

    *now*: the wall clock, for an ``Expires`` without a ``Date``.
    """
    said = directives(response.header(b"cache-control"))
    if "no-cache" in said:
        return 0.0, 0.0
    max_age = _seconds(said["max-age"]) if "max-age" in said else _expires(response, now)
    shared = _seconds(said["s-maxage"]) if "s-maxage" in said else max_age
    stated_age = response.header(b"age")
    age = 0.0 if stated_age is None else _seconds(stated_age.decode("latin-1"))
    return max(0.0, shared - age), max(0.0, max_age - age)


def _seconds(value: str | None) -> float:
    """A delta-seconds value; 0 for one that is not a number (not fresh at all)."""
    value = (value or "").strip()
    return float(value) if value.isascii() and value.isdigit() else 0.0  # "²" is a digit to Python


def _expires(response: Response, now: float) -> float:
    """``Expires`` less ``Date`` (or now); ``inf`` without ``Expires``, 0 for one that is no date."""
    expires = response.header(b"expires")
    if expires is None:
        return math.inf
    try:
        at = email.utils.parsedate_to_datetime(expires.decode("latin-1")).timestamp()
        date = response.header(b"date")
        then = now if date is None else email.utils.parsedate_to_datetime(date.decode("latin-1")).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return 0.0  # "0", "-1", garbage: already expired (RFC 9111 5.3)
    return max(0.0, at - then)


def must_revalidate(response: Response) -> bool:
    """Whether a shared cache must not serve *response* once stale, without revalidating it
    (``must-revalidate``, ``proxy-revalidate``, or ``s-maxage``, which implies it: RFC 9111 5.2.2)."""
    said = directives(response.header(b"cache-control"))
    return not said.keys().isdisjoint(("must-revalidate", "proxy-revalidate", "s-maxage"))


def vary_names(response: Response) -> tuple[str, ...] | None:
    """The request headers *response* varies on, lower case and sorted (None: it names none)."""
    names = {
        n.strip().lower() for k, v in response.headers if k == b"vary" for n in v.decode("latin-1").split(",")
    }
    names.discard("")
    return tuple(sorted(names)) if names else None


def etag(body: bytes) -> str:
    """A strong ETag: the same body, the same tag, in every process."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def is_etag(tag: str) -> bool:
    """Whether *tag* is one ``etag`` gives (a shared store's entry may hold anything)."""
    return _ETAG.fullmatch(tag) is not None


_ETAG = re.compile(r'"[0-9a-f]{32}"')


def matches(if_none_match: bytes | None, tag: str) -> bool:
    """RFC 9110 13.1.2: weak comparison, a list of tags, or ``*``."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.decode("latin-1").split(",")]
    return "*" in tags or tag in tags
