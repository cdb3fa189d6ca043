"""The base of vix_ttl's string enums: members that are their values, and ``coerce``."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

__all__ = ["ValueEnum"]


class ValueEnum(StrEnum):
    """A ``StrEnum`` whose members hash like their values and are coerced from them.

    ``Member == "value"`` already holds for a ``StrEnum``; hashing like the
    value too (Enum hashes the name) lets a member and its value find each
    other as mapping keys, with the lookup kept in C.
    """

    __hash__ = str.__hash__

    @classmethod
    def coerce(cls, value: Self | str) -> Self:
        """Return the member for *value*: a member, or its value in any case.

        Raises:
            ValueError: *value* is neither, naming the valid values.
        """
        if value.__class__ is cls:
            return value
        member = cls._value2member_map_.get(value.lower()) if isinstance(value, str) else None
        if member is None:
            valid = ", ".join(repr(m.value) for m in cls)
            raise ValueError(f"invalid {cls.__name__} {value!r}: expected one of {valid} (any case)")
        return member  # type: ignore[return-value]
