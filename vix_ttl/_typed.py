"""The values of shared stores, as vix_ttl serializes them: Python's common types, exactly.

JSON turns a tuple into a list and ``{1: "a"}`` into ``{"1": "a"}``; pickle keeps
everything and runs whatever code an entry's writer chose. This serializer keeps
what functions return — ``None``, bools, ints of any size, floats, ``str``,
``bytes``, lists, tuples, dicts with keys of any of these types, sets, frozensets,
``datetime`` / ``date`` / ``time`` with their UTC offset, ``Decimal`` and ``UUID``,
nested — and decodes data, never code. msgpack carries it (C-accelerated, well-kept,
aiocache's own): each type JSON lacks is a msgpack extension of its own, decoded by
``_extension`` into that type alone. Types are matched exactly: a subclass (an
``IntEnum``, a ``namedtuple``, a ``str`` subclass) or a ``bytearray`` would come back
as its base, so it is refused, ``UnkeepableValueError`` naming it; so is a nesting of
tuples, sets and frozensets deeper than ``MAX_NESTING`` (on reading too).

Two forms, for two kinds of store: bytes (``dumps``) where the store keeps bytes,
text (``dumps_text``, base64) where it decodes what it reads as text (aiocache's
JSON serializer reads UTF-8). ``loads`` reads both, and JSON: the entries 0.2 wrote,
which held only values that JSON gives back equal.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import threading
import uuid
from typing import Any

import msgpack

__all__ = ["MAX_NESTING", "UnkeepableValueError", "dumps", "dumps_text", "loads"]

_BINARY = b"\xc1"  # a byte msgpack never uses, and no JSON text starts with
_TEXT = "~"  # no JSON text starts with it either
_TEXT_BYTES = _TEXT.encode()


class UnkeepableValueError(TypeError):
    """A value this serializer cannot give back exactly (it is not stored)."""


def dumps(value: Any) -> bytes:
    """*value* as bytes.

    Raises:
        UnkeepableValueError: *value* holds a type this serializer cannot keep exactly.
    """
    return _BINARY + _pack(value)


def dumps_text(value: Any) -> str:
    """*value* as ASCII text, for stores that decode what they read (1.33 times the bytes).

    Raises:
        UnkeepableValueError: *value* holds a type this serializer cannot keep exactly.
    """
    return _TEXT + base64.b64encode(_pack(value)).decode("ascii")


def loads(payload: bytes | str) -> Any:
    """The value ``dumps`` or ``dumps_text`` made *payload* of (or 0.2's JSON).

    Raises:
        ValueError: *payload* is none of these (``json.JSONDecodeError`` is one).
    """
    if isinstance(payload, str):
        if payload.startswith(_TEXT):
            return _unpack(base64.b64decode(payload[1:], validate=True))
    elif payload.startswith(_BINARY):
        return _unpack(payload[1:])
    elif payload.startswith(_TEXT_BYTES):  # text, handed back as bytes (a Redis client's default)
        return _unpack(base64.b64decode(payload[1:], validate=True))
    return json.loads(payload)


MAX_NESTING = 32
"""Tuples, sets and frozensets within one another, at most: each level is a msgpack
extension decoded by a call of its own, and the C stack is finite (200 levels crashed
the reading process)."""


def _pack(value: Any) -> bytes:
    _check(value)
    try:
        return msgpack.packb(value, default=_extend, use_bin_type=True, strict_types=True, datetime=False)  # type: ignore[no-any-return]
    except (ValueError, OverflowError) as exc:  # a nesting too deep, say
        raise UnkeepableValueError(f"vix_ttl's serializer cannot keep this value: {exc}") from None


def _check(value: Any) -> None:
    """Refuse a value that would come back otherwise: a type this serializer does not keep
    (msgpack itself packs a ``bytearray`` as ``bytes``), or extensions nested too deep."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        kind = type(item)
        if kind in _LEAVES:
            continue
        if kind is list:
            pending.extend((x, depth) for x in item)
        elif kind is dict:
            pending.extend((x, depth) for pair in item.items() for x in pair)
        elif kind in _EXTENDED:
            if depth == MAX_NESTING:
                raise UnkeepableValueError(
                    f"vix_ttl's serializer keeps tuples, sets and frozensets {MAX_NESTING} deep at most"
                )
            pending.extend((x, depth + 1) for x in item)
        else:
            raise _unkeepable(kind)


def _unpack(data: bytes) -> Any:
    depth = getattr(_decoding, "depth", 0)
    if depth > MAX_NESTING:
        raise ValueError(f"not a vix_ttl value: extensions nested deeper than {MAX_NESTING}")
    _decoding.depth = depth + 1
    try:
        return msgpack.unpackb(data, ext_hook=_extension, strict_map_key=False, raw=False, use_list=True)
    finally:
        _decoding.depth = depth


_decoding = threading.local()  # how deep the extension being decoded is, in this thread


# Extension codes: each is decoded into its own type only.
_TUPLE, _SET, _FROZENSET, _DATETIME, _DATE, _TIME, _DECIMAL, _UUID, _INT, _BIG_INT = range(1, 11)
# _INT: 0.2's ints beyond 64 bits, in decimal (read still); _BIG_INT: two's complement bytes,
# which have no digit limit (Python refuses to print an int of over 4,300 digits).


def _extend(value: Any) -> msgpack.ExtType:
    """The extension of a value msgpack has no type for (called for nested values too)."""
    kind = type(value)
    if kind is tuple:
        return msgpack.ExtType(_TUPLE, _pack(list(value)))
    if kind is set:
        return msgpack.ExtType(_SET, _pack(list(value)))
    if kind is frozenset:
        return msgpack.ExtType(_FROZENSET, _pack(list(value)))
    if kind is datetime.datetime:
        return msgpack.ExtType(_DATETIME, value.isoformat().encode())
    if kind is datetime.date:
        return msgpack.ExtType(_DATE, value.isoformat().encode())
    if kind is datetime.time:
        return msgpack.ExtType(_TIME, value.isoformat().encode())
    if kind is decimal.Decimal:
        return msgpack.ExtType(_DECIMAL, str(value).encode())
    if kind is uuid.UUID:
        return msgpack.ExtType(_UUID, value.bytes)
    if kind is int:  # beyond 64 bits
        return msgpack.ExtType(_BIG_INT, value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True))
    raise _unkeepable(kind)


def _unkeepable(kind: type) -> UnkeepableValueError:
    return UnkeepableValueError(
        f"vix_ttl's serializer cannot keep a {kind.__module__}.{kind.__qualname__} exactly (it keeps None, "
        f"bool, int, float, str, bytes, list, tuple, dict, set, frozenset, datetime, date, time, Decimal "
        f"and UUID, not their subclasses): return one of those, or give the cache a serializer that "
        f"keeps it (with a secret if it may run code)"
    )


# What _check lets through as it is, and the containers that are extensions (nested, counted).
_LEAVES = frozenset(
    {type(None), bool, int, float, str, bytes, datetime.datetime, datetime.date, datetime.time}
    | {decimal.Decimal, uuid.UUID}
)
_EXTENDED = frozenset({tuple, set, frozenset})


def _extension(code: int, data: bytes) -> Any:
    if code == _TUPLE:
        return tuple(_unpack(data))
    if code == _SET:
        return set(_unpack(data))
    if code == _FROZENSET:
        return frozenset(_unpack(data))
    if code == _DATETIME:
        return datetime.datetime.fromisoformat(data.decode())
    if code == _DATE:
        return datetime.date.fromisoformat(data.decode())
    if code == _TIME:
        return datetime.time.fromisoformat(data.decode())
    if code == _DECIMAL:
        return decimal.Decimal(data.decode())
    if code == _UUID:
        return uuid.UUID(bytes=data)
    if code == _BIG_INT:
        return int.from_bytes(data, "big", signed=True)
    if code == _INT:
        return int(data)
    raise ValueError(f"not a vix_ttl value: msgpack extension {code}")
