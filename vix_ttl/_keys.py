"""Stable, typed, canonical keys of calls for stores shared between processes (Redis, memcached).

``repr(args)`` is no such key: an object with the default repr is keyed by its
memory address (a new object at a reused address would be served a dead one's
value), a set is written in its hash-seed order (two processes never agree), and
memcached refuses keys with spaces or over 250 bytes. Here a key is encoded from
its *value* with a tagged, self-delimiting grammar that is injective and typed
like ``functools.lru_cache(typed=True)``, then made safe for every backend::

    None N    True T    False F    int i<decimal> (i<hex> past 2000 bits)
    float f<repr>    complex j<repr real>:<repr imag>
    str s<length in chars>:<text>    bytes b<length>:<hex>
    tuple (a,b)    list [a,b]    dict k(k=v,...) sorted    set, frozenset <a,b> sorted
    datetime D<iso>    date d<iso>    time t<iso>    Decimal m<str>    UUID u<hex>
    class c<C>    enum member e<C><name, or a Flag's value>    dataclass(eq=True) o<C>(field=v,...)
    subclass of one of the builtins above (a NamedTuple, a str subclass) @<C><encoding as the builtin>

where ``<C>`` is ``<length>:<module.qualname>`` of the class. Anything else has
no identity but its address: a ``TypeError`` asks for ``key=``.

A wire key never holds ``{`` or ``}``: Redis Cluster hashes only what a key holds
between its first ``{`` and the next ``}`` (a hash tag), so a keyword argument
encoded in braces would put every call with it in one slot. A key whose encoding
would hold one (a string argument with a brace) is hashed instead.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache
from typing import Any
from uuid import UUID

__all__ = ["MAX_WIRE_BYTES", "digest", "encode_key", "key_prefix", "wire_key"]

MAX_WIRE_BYTES = 150
"""memcached's 250-byte limit, leaving 100 bytes for the cache's own namespace."""

_PREFIX = "vix_ttl:"
_MAX_NAMESPACE_BYTES = 64
# Past this, str(int) may hit the process's int_max_str_digits limit (640 digits at the
# lowest): hex has no limit, and a threshold on the value keeps the choice canonical.
_BIG_INT = 1 << 2000


def encode_key(key: object) -> str:
    """Canonical, typed text encoding of a cache key (the call's arguments).

    Equal values of the same types encode equally in every process; values that
    differ, by ``==`` or by a type at any level, encode differently.

    Raises:
        TypeError: a value whose only identity is its memory address (asks for ``key=``).
        ValueError: a container that contains itself, or nesting deeper than the recursion limit.
    """
    try:
        return _encode(key)
    except RecursionError:
        raise ValueError(
            "cannot build a cache key from arguments that contain themselves "
            "or nest too deeply; pass key= to vix_cached to build the key from their fields"
        ) from None


def key_prefix(namespace: str) -> str:
    """``'vix_ttl:' + namespace part + '|'``: the start of every ``wire_key(namespace, ...)``.

    The namespace part is the namespace when it is short and safe, else ``#`` and
    its digest; it never holds a Redis glob character, so the prefix can be matched.
    """
    safe = 0 < len(namespace) <= _MAX_NAMESPACE_BYTES and "#" not in namespace and _is_safe(namespace)
    return f"{_PREFIX}{namespace if safe else digest(namespace)}|"


def wire_key(namespace: str, key: object) -> str:
    """The key of *key* in a shared store: ``key_prefix(namespace)`` + the key part.

    The key part is the readable encoding when it is safe and the whole fits in
    ``MAX_WIRE_BYTES``, else ``#`` and its digest (an encoding never starts with
    ``#``, so the two forms never meet). Printable ASCII, no space, at most
    ``MAX_WIRE_BYTES`` bytes.
    """
    prefix = _cached_prefix(namespace)
    text = encode_key(key)
    wire = prefix + text
    if len(wire) <= MAX_WIRE_BYTES and _is_safe(text):
        return wire
    return prefix + digest(text)


# The namespace is one per decorated function: its check is not paid on every call.
_cached_prefix = lru_cache(maxsize=1024)(key_prefix)


def _is_safe(text: str) -> bool:
    """Printable ASCII, no space (memcached refuses spaces and control characters), no
    ``|`` (it ends the namespace), no Redis glob character (prefixes are matched) and no
    brace (Redis Cluster would hash a key by what its braces hold)."""
    # isascii is O(1), isprintable one C loop, and each `in` a fast C search: together
    # they cost what one regex match does, or less.
    return (
        text.isascii()
        and text.isprintable()
        and " " not in text
        and "|" not in text
        and "*" not in text
        and "?" not in text
        and "[" not in text
        and "]" not in text
        and "\\" not in text
        and "{" not in text
        and "}" not in text
    )


def digest(text: str) -> str:
    """``#`` and the SHA-256 of *text*, base64url: a key part of 44 safe characters."""
    # surrogatepass: a str with a lone surrogate is still a key, and still injective.
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return "#" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _encode(x: object) -> str:
    # Exact types first: the common key (a tuple of a few str and int) is dict lookups.
    return _EXACT.get(type(x), _encode_other)(x)


def _class(cls: type) -> str:
    # A class is keyed by its name, which identifies it only when it is made once: two
    # classes made by two calls of one function share a name and must not share keys.
    if "<locals>" in cls.__qualname__:
        raise TypeError(
            f"cannot build a stable cache key from {cls.__module__}.{cls.__qualname__} or its "
            f"instances: a class defined inside a function is made anew at each call, and its name "
            f"does not tell one from another; define it at module level, or pass key= to vix_cached"
        )
    path = f"{cls.__module__}.{cls.__qualname__}"
    return f"{len(path)}:{path}"


def _int(x: int) -> str:
    return f"i{x}" if -_BIG_INT < x < _BIG_INT else f"i{x:#x}"


def _tuple(x: tuple[Any, ...]) -> str:
    # _encode inlined: the arguments of every call are a tuple, and the call costs 10%.
    return "(" + ",".join([_EXACT.get(type(i), _encode_other)(i) for i in x]) + ")"


def _list(x: list[Any]) -> str:
    return "[" + ",".join(map(_encode, x)) + "]"


def _dict(x: dict[Any, Any]) -> str:
    pairs = sorted((_encode(k), _encode(v)) for k, v in x.items())
    return "k(" + ",".join(f"{k}={v}" for k, v in pairs) + ")"


def _ordered_dict(x: OrderedDict[Any, Any]) -> str:
    # Two OrderedDicts in different orders are not equal: the order is part of the key.
    return "k(" + ",".join(f"{_encode(k)}={_encode(v)}" for k, v in x.items()) + ")"


def _set(x: set[Any] | frozenset[Any]) -> str:
    return "<" + ",".join(sorted(map(_encode, x))) + ">"


_EXACT: dict[type, Callable[[Any], str]] = {
    type(None): lambda x: "N",
    bool: lambda x: "T" if x else "F",
    int: _int,
    float: lambda x: f"f{x!r}",
    complex: lambda x: f"j{x.real!r}:{x.imag!r}",
    str: lambda x: f"s{len(x)}:{x}",
    bytes: lambda x: f"b{len(x)}:{x.hex()}",
    tuple: _tuple,
    list: _list,
    dict: _dict,
    set: _set,
    frozenset: _set,
    datetime: lambda x: "D" + x.isoformat(),
    date: lambda x: "d" + x.isoformat(),
    time: lambda x: "t" + x.isoformat(),
    Decimal: lambda x: "m" + Decimal.__str__(x),
    UUID: lambda x: "u" + x.hex,
    type: lambda x: "c" + _class(x),
}

# Subclasses keep their class in the key (a Point(1, 2) NamedTuple is not (1, 2)). Scalars
# are read through the builtin's own methods: an overridden __str__ is not the value. Order
# matters: OrderedDict before dict, datetime (a date subclass) before date.
_SUBCLASSED: tuple[tuple[type, Callable[[Any], str]], ...] = (
    (str, lambda x: _EXACT[str](str.__str__(x))),
    (int, lambda x: _int(int.__int__(x))),
    (float, lambda x: _EXACT[float](float.__float__(x))),
    (complex, lambda x: _EXACT[complex](complex.__complex__(x))),
    (bytes, lambda x: _EXACT[bytes](bytes.__bytes__(x))),
    (tuple, _tuple),
    (list, _list),
    (OrderedDict, _ordered_dict),
    (dict, _dict),
    (set, _set),
    (frozenset, _set),
    (datetime, _EXACT[datetime]),
    (date, _EXACT[date]),
    (time, _EXACT[time]),
    (Decimal, _EXACT[Decimal]),
    (UUID, _EXACT[UUID]),
)


def _encode_other(x: object) -> str:
    cls = type(x)
    if isinstance(x, enum.Enum):
        # A Flag combination may have no name (None); its value is its identity.
        return "e" + _class(cls) + _encode(x._value_ if isinstance(x, enum.Flag) else x._name_)
    if isinstance(x, type):
        return "c" + _class(x)
    for base, encode in _SUBCLASSED:
        if isinstance(x, base):
            return "@" + _class(cls) + encode(x)
    params = getattr(cls, "__dataclass_params__", None)
    if params is not None and params.eq and dataclasses.is_dataclass(x):
        # The generated __eq__ compares the class and these fields: so does the key.
        fields = dataclasses.fields(x)
        inside = ",".join(f"{f.name}={_encode(getattr(x, f.name))}" for f in fields if f.compare)
        return "o" + _class(cls) + "(" + inside + ")"
    raise _unkeyable(cls)


def _unkeyable(cls: type) -> TypeError:
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    eq: object = cls.__eq__
    why = (
        "its only identity is its memory address"
        if eq is object.__eq__
        else "vix_ttl cannot tell which of its fields make its identity"
    )
    return TypeError(
        f"cannot build a stable cache key from an argument of type {name} ({why}); "
        "pass key= to vix_cached to build the key from its fields"
    )
