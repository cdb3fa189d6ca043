"""vix_ttl's serializer of shared values: Python's common types come back exactly, nested, types
included; anything else is refused naming its type; decoding reads data, never code."""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import json
import math
import pickle
import uuid
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vix_ttl._typed import MAX_NESTING, UnkeepableValueError, dumps, dumps_text, loads

offsets = st.sampled_from(
    [
        None,
        datetime.UTC,
        datetime.timezone(datetime.timedelta(hours=2)),
        datetime.timezone(-datetime.timedelta(minutes=330)),
    ]
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**200), max_value=2**200),  # beyond msgpack's 64 bits too
    st.floats(),  # NaN, infinities and -0.0 included
    st.text(),
    st.binary(),
    st.datetimes(timezones=offsets),
    st.dates(),
    st.times(timezones=offsets),
    st.decimals(),  # NaN, sNaN, infinities, -0 and exponents included
    st.uuids(),
)
hashables = st.recursive(
    leaves.filter(lambda v: not (isinstance(v, decimal.Decimal) and v.is_snan())),  # an sNaN does not hash
    lambda inner: st.one_of(st.tuples(inner, inner), st.frozensets(inner, max_size=3)),
    max_leaves=8,
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(hashables, inner, max_size=4),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4),
    ),
    max_leaves=20,
)


def exactly(value: Any) -> Any:
    """*value* spelled out with the type of every part (NaN, -0.0 and offsets told apart): what
    must come back."""
    kind = type(value).__name__
    if isinstance(value, list | tuple):
        return (kind, [exactly(item) for item in value])
    if isinstance(value, set | frozenset):
        return (kind, sorted(repr(exactly(item)) for item in value))
    if isinstance(value, dict):
        return (kind, sorted((repr(exactly(k)), repr(exactly(v))) for k, v in value.items()))
    if isinstance(value, datetime.datetime | datetime.time):
        return (kind, value.isoformat(), value.utcoffset())
    if isinstance(value, float):
        return (kind, repr(value), math.copysign(1, value))
    return (kind, repr(value))


@given(values)
def test_a_value_comes_back_exactly_in_both_forms(value: Any) -> None:
    assert exactly(loads(dumps(value))) == exactly(value)
    text = dumps_text(value)
    assert text.isascii()  # for stores that decode what they read as text
    assert exactly(loads(text)) == exactly(value)
    assert exactly(loads(text.encode())) == exactly(value)  # text handed back as bytes (redis-py's default)


class Colour(enum.IntEnum):
    RED = 1


class Label(str):
    pass


Point = collections.namedtuple("Point", "x y")


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (Colour.RED, "tests.test_typed.Colour"),  # would come back as the int 1
        (Point(1, 2), "tests.test_typed.Point"),  # as a plain tuple
        (Label("odds"), "tests.test_typed.Label"),
        (bytearray(b"odds"), "builtins.bytearray"),  # msgpack itself packs it as bytes
        (memoryview(b"odds"), "builtins.memoryview"),
        (collections.OrderedDict(a=1), "collections.OrderedDict"),
        ({"deep": [1, (2, {Colour.RED})]}, "tests.test_typed.Colour"),  # found anywhere inside
        ({Point(1, 2): "key"}, "tests.test_typed.Point"),  # keys too
        (object(), "builtins.object"),
    ],
)
def test_a_value_that_would_come_back_otherwise_is_refused_naming_its_type(value: Any, named: str) -> None:
    for dump in (dumps, dumps_text):
        with pytest.raises(
            UnkeepableValueError, match=rf"cannot keep a {named} exactly \(it keeps None, bool"
        ):
            dump(value)
    assert issubclass(UnkeepableValueError, TypeError)


def nested(depth: int) -> Any:
    """Tuples and frozensets within one another, *depth* deep, a set outermost."""
    value: Any = "core"
    for level in range(depth - 1):
        value = (value,) if level % 2 == 0 else frozenset({value})
    return {value}


def test_tuples_and_sets_nest_as_deep_as_the_limit_and_no_deeper() -> None:
    assert loads(dumps(nested(MAX_NESTING))) == nested(MAX_NESTING)
    for dump in (dumps, dumps_text):
        with pytest.raises(UnkeepableValueError, match=f"{MAX_NESTING} deep at most"):
            dump(nested(MAX_NESTING + 1))
    assert loads(dumps([[[[[[[[[[1]]]]]]]]]])) == [[[[[[[[[[1]]]]]]]]]]  # lists and dicts are no extension


def test_an_entry_planted_deeper_than_the_limit_is_refused_on_reading_not_decoded() -> None:
    payload = msgpack.packb([])
    for _ in range(5000):  # tuples within tuples, written by hand: a reader's C stack would overflow
        payload = msgpack.packb(msgpack.ExtType(1, payload))
    with pytest.raises(ValueError, match=f"nested deeper than {MAX_NESTING}"):
        loads(b"\xc1" + payload)


class Planted:
    ran = False

    def __reduce__(self) -> Any:
        return (setattr, (Planted, "ran", True))


@pytest.mark.parametrize("form", [bytes, lambda b: b.decode("latin-1")])
def test_a_pickle_is_never_unpickled(form: Any) -> None:
    with pytest.raises(ValueError):
        loads(form(pickle.dumps(Planted())))
    assert not Planted.ran


@pytest.mark.parametrize("code", [0, 11, 99])
def test_an_unknown_extension_is_refused(code: int) -> None:
    with pytest.raises(ValueError, match=f"not a vix_ttl value: msgpack extension {code}"):
        loads(b"\xc1" + msgpack.packb(msgpack.ExtType(code, b"")))


@pytest.mark.parametrize("value", [{"odds": [1.85, None, True]}, "text", 7, [1, 2]])
def test_the_json_entries_of_0_2_are_still_read(value: Any) -> None:
    assert loads(json.dumps(value)) == value
    assert loads(json.dumps(value).encode()) == value


def test_garbage_is_a_value_error() -> None:
    for garbage in ("~not base64!", b"~not base64!", "", b"\xc1\xc1", "{"):
        with pytest.raises(ValueError):
            loads(garbage)


def test_the_types_that_json_would_change_keep_their_types() -> None:
    # What 0.2 (JSON) got wrong: tuples came back as lists, int keys as strings.
    value = {
        1: (2, 3),
        "when": datetime.date(2026, 6, 11),
        "d": decimal.Decimal("2.10"),
        "u": uuid.UUID(int=7),
    }
    back = loads(dumps(value))
    assert back == value and type(back[1]) is tuple and str(back["d"]) == "2.10"


def test_ints_of_any_size_come_back_even_past_python_s_digit_limit() -> None:
    for value in (10**5000, -(10**5000) - 7, 2**64, -(2**63) - 1):
        assert loads(dumps(value)) == value
        assert loads(dumps_text(value)) == value
