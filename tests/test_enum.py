"""vix_ttl's string enums (``ValueEnum``: ``VixStatus``, ``Mode``, ``Outcome``, ...): members are
their values, also as mapping keys, and ``coerce`` takes a member or its value in any case."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vix_ttl import VixStatus
from vix_ttl._enum import ValueEnum


class Colour(ValueEnum):
    RED = "red"
    DARK_BLUE = "dark_blue"


@pytest.mark.parametrize("value", ["panic", "PANIC", "Panic", VixStatus.PANIC])
def test_coerce_accepts_members_and_any_case(value: str) -> None:
    assert VixStatus.coerce(value) is VixStatus.PANIC


@pytest.mark.parametrize("value", ["", "calm", "panic ", None, 2, b"panic", 0.5])
def test_coerce_rejects_anything_else_naming_the_valid_values(value: object) -> None:
    with pytest.raises(ValueError, match="'normal', 'warning', 'panic'"):
        VixStatus.coerce(value)  # type: ignore[arg-type]


def test_members_are_their_string_values_also_as_mapping_keys() -> None:
    assert VixStatus.WARNING == "warning"  # type: ignore[comparison-overlap]
    assert f"{VixStatus.WARNING}" == "warning"
    assert {"warning": 1}[VixStatus.WARNING] == 1
    assert {VixStatus.WARNING: 1}["warning"] == 1  # type: ignore[index]


@given(st.sampled_from(list(Colour)), st.lists(st.booleans(), min_size=9, max_size=9))
def test_any_casing_of_a_value_is_its_member(member: Colour, upper: list[bool]) -> None:
    value = "".join(c.upper() if up else c for c, up in zip(member.value, upper, strict=False))
    assert Colour.coerce(value) is member
    assert hash(member) == hash(member.value)  # one lookup finds a member by its value, and back
    assert {member.value: "found"}[member] == "found"


def test_the_error_names_the_enum_and_the_value_given() -> None:
    with pytest.raises(
        ValueError, match=r"^invalid Colour 'blue': expected one of 'red', 'dark_blue' \(any case\)$"
    ):
        Colour.coerce("blue")


def test_a_member_of_another_enum_is_taken_by_its_value() -> None:
    class Shade(ValueEnum):
        RED = "red"

    assert Colour.coerce(Shade.RED) is Colour.RED  # a str of the value "red"
    with pytest.raises(ValueError, match="invalid Colour"):
        Colour.coerce(VixStatus.PANIC)
