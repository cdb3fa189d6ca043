"""The envelope around a cached value: when it was stored, for how long, and why.

An envelope keeps the type of the payload the inner serializer made, so it
crosses any backend and any aiocache serializer unchanged:

- ``str`` payload (string, JSON serializers) -> ``"vix_ttl:1|<header>\\n<payload>"``
- ``bytes`` payload (pickle, msgpack) -> the same, encoded
- anything else (aiocache's ``NullSerializer`` in memory) -> a tuple

The header holds the wall-clock stored-at time, the decided TTL, the caller's
base TTL and the status. ``open_envelope`` never raises: a payload that is not
an envelope of this version, or whose header does not parse, is ``None``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

__all__ = ["Header", "open_envelope", "seal"]

_MARK = "vix_ttl:1"
_MARK_BYTES = _MARK.encode()
_STATUSES = frozenset(("normal", "warning", "panic"))


class Header(NamedTuple):
    stored_at: float
    ttl: float
    base_ttl: float
    status: str


def seal(header: Header, payload: Any) -> Any:
    """Wrap *payload* (as the inner serializer made it) with *header*."""
    text = f"{_MARK}|{header.stored_at!r}|{header.ttl!r}|{header.base_ttl!r}|{header.status}\n"
    if isinstance(payload, str):
        return text + payload
    if isinstance(payload, bytes | bytearray):
        return text.encode() + bytes(payload)
    return (_MARK, *header, payload)


def open_envelope(raw: Any) -> tuple[Header, Any] | None:
    """``(header, payload)`` of an envelope, or ``None`` for anything else."""
    try:
        if isinstance(raw, str):
            if raw.startswith(_MARK):
                head, _, payload = raw.partition("\n")
                return _header(head.split("|")), payload
        elif isinstance(raw, bytes | bytearray):
            if raw.startswith(_MARK_BYTES):
                head_bytes, _, payload_bytes = bytes(raw).partition(b"\n")
                return _header(head_bytes.decode("ascii").split("|")), payload_bytes
        elif isinstance(raw, tuple) and len(raw) == 6:
            return _header(list(raw[:5])), raw[5]
    except (TypeError, ValueError, UnicodeDecodeError):
        pass
    return None


def _header(fields: list[Any]) -> Header:
    if len(fields) != 5 or fields[0] != _MARK or fields[4] not in _STATUSES:
        raise ValueError("not a vix_ttl envelope header")
    stored_at, ttl, base_ttl = (float(f) for f in fields[1:4])
    if not all(math.isfinite(x) for x in (stored_at, ttl, base_ttl)) or ttl < 0 or base_ttl < 0:
        raise ValueError("bad vix_ttl envelope header")
    return Header(stored_at, ttl, base_ttl, fields[4])
