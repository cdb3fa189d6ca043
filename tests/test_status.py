from __future__ import annotations

import pytest

from vix_ttl import VixStatus


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
