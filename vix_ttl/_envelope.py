"""The envelope around a cached value: when it was stored, for how long, why, and by whom.

An envelope keeps the type of the payload the inner serializer made, so it
crosses any backend and any aiocache serializer unchanged:

- ``str`` payload (string, JSON serializers) -> ``"vix_ttl:2|<sig>|<header>\\n<payload>"``
- ``bytes`` payload (pickle, msgpack) -> the same, encoded
- in-process (aiocache's memory backend, or a payload that is neither str nor
  bytes, as ``NullSerializer`` makes) -> a tuple, never signed: no network
  backend can hand back a tuple, so its type proves nobody else wrote it

The header holds the wall-clock stored-at time, the decided TTL, the caller's
base TTL (``inf``: never expires), the status, how long the computation took, and
the entry's place in the order of its key's values (monotonic reads: a writer puts
it after every value of the key it has seen, so writers' clocks may disagree; 0.2's
entries, without it, take their stored-at time). ``<sig>`` is the HMAC of the wire
key and of everything after the signature field (``-`` when unsigned).

``open_envelope`` never raises and never decodes a payload: it returns
``None`` for anything that is not an envelope of this version, whose header
does not parse, or whose signature does not verify when a signer is given.
Version 1 envelopes (0.1.x: unsigned, pickled by default) are not read.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from vix_ttl._signing import Signer
from vix_ttl.status import VixStatus

__all__ = ["GONE", "Header", "open_envelope", "seal", "seal_local"]

_MARK = "vix_ttl:2|"
_MARK_BYTES = _MARK.encode()
_UNSIGNED = "-"
_STATUSES = frozenset(status.value for status in VixStatus)
GONE = "gone"
"""A tombstone's status: signed with the rest, so no entry is ever read as one, nor one as an entry."""
_GONE = frozenset({GONE})


class Header(NamedTuple):
    stored_at: float
    ttl: float
    base_ttl: float
    status: str
    delta: float = 0.0
    """How long the value took to compute (early refresh weighs it)."""
    order: float = math.nan
    """Its place among the values of its key (NaN: its stored-at time)."""


def seal(header: Header, payload: Any, *, signer: Signer | None = None, key: bytes | None = None) -> Any:
    """Wrap *payload* (as the inner serializer made it) with *header*, signed if *signer* is given.

    Raises:
        TypeError: a signer is given but the payload is neither str nor bytes.
    """
    stored_at, ttl, base_ttl, status, delta, order = header
    order = stored_at if math.isnan(order) else order
    head = f"{stored_at!r}|{ttl!r}|{base_ttl!r}|{status}|{delta!r}|{order!r}\n"
    if isinstance(payload, str):
        text = head + payload
        signature = _UNSIGNED if signer is None else signer.sign(key, text.encode())
        return f"{_MARK}{signature}|{text}"
    if isinstance(payload, bytes | bytearray):
        body = head.encode() + bytes(payload)
        signature = _UNSIGNED if signer is None else signer.sign(key, body)
        return f"{_MARK}{signature}|".encode() + body
    if signer is None:
        return seal_local(header, payload)
    raise TypeError(
        f"a signed entry needs a serializer that makes str or bytes, got {type(payload).__name__}"
    )


def seal_local(header: Header, payload: Any) -> tuple[Any, ...]:
    """Wrap *payload* for an in-process store: a tuple, which only memory can hold."""
    order = header.stored_at if math.isnan(header.order) else header.order
    return (_MARK, *header[:5], order, payload)


def open_envelope(
    raw: Any, *, signer: Signer | None = None, key: bytes | None = None, tombstone: bool = False
) -> tuple[Header, Any] | None:
    """``(header, payload)`` of a valid envelope, or ``None`` for anything else.

    With a *signer*, an envelope whose signature does not verify (or that has
    none) is ``None`` too; its payload is never touched. A tuple needs no
    signature: only an in-process store can hold one. *tombstone*: a tombstone is
    asked for (status ``GONE``), and nothing else is one; else an entry.
    """
    statuses = _GONE if tombstone else _STATUSES
    try:
        if isinstance(raw, str):
            if not raw.startswith(_MARK):
                return None
            signature, _, body = raw[len(_MARK) :].partition("|")
            if signer is not None and not signer.verify(key, body.encode(), signature):
                return None
            head, _, payload = body.partition("\n")
            return _header(head.split("|"), statuses), payload
        if isinstance(raw, bytes | bytearray):
            if not raw.startswith(_MARK_BYTES):
                return None
            signature_bytes, _, body_bytes = bytes(raw)[len(_MARK_BYTES) :].partition(b"|")
            signature = signature_bytes.decode("ascii")
            if signer is not None and not signer.verify(key, body_bytes, signature):
                return None
            head_bytes, _, payload_bytes = body_bytes.partition(b"\n")
            return _header(head_bytes.decode("ascii").split("|"), statuses), payload_bytes
        if isinstance(raw, tuple) and len(raw) == 8 and raw[0] == _MARK:
            return _header(list(raw[1:7]), statuses), raw[7]
    except (TypeError, ValueError, UnicodeError):
        pass
    return None


def _header(fields: list[Any], statuses: frozenset[str]) -> Header:
    if len(fields) not in (5, 6) or fields[3] not in statuses:  # 0.2 wrote 5 fields
        raise ValueError("not a vix_ttl envelope header")
    stored_at, ttl, base_ttl, delta = (float(f) for f in (*fields[:3], fields[4]))
    order = float(fields[5]) if len(fields) == 6 else stored_at
    # `>= 0` is False for NaN; an infinite TTL means "never expires".
    if not (
        math.isfinite(stored_at)
        and ttl >= 0
        and base_ttl >= 0
        and math.isfinite(delta)
        and delta >= 0
        and math.isfinite(order)
    ):
        raise ValueError("bad vix_ttl envelope header")
    return Header(stored_at, ttl, base_ttl, fields[3], delta, order)
