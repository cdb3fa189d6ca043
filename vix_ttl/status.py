"""The volatility status of a piece of data: how fast it is moving right now."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["VixStatus"]


class VixStatus(StrEnum):
    """How volatile the data behind a cache entry is right now.

    Members are strings (``VixStatus.PANIC == "panic"``) and hash like them, so
    a member and its value are interchangeable as mapping keys.
    """

    NORMAL = "normal"
    WARNING = "warning"
    PANIC = "panic"

    # Hash like the value (Enum hashes the name), so members and their string
    # values find each other in a dict, and the lookup stays in C.
    __hash__ = str.__hash__

    @classmethod
    def coerce(cls, value: VixStatus | str) -> VixStatus:
        """Return the member for *value*: a member, or its name in any case.

        Raises:
            ValueError: *value* is neither, naming the valid values.
        """
        if value.__class__ is cls:
            return value
        member = _BY_VALUE.get(value.lower()) if isinstance(value, str) else None
        if member is None:
            valid = ", ".join(repr(m.value) for m in cls)
            raise ValueError(f"invalid VIX status {value!r}: expected one of {valid} (any case)")
        return member


_BY_VALUE: dict[str, VixStatus] = {m.value: m for m in VixStatus}
