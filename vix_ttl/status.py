"""The volatility status of a piece of data: how fast it is moving right now."""

from __future__ import annotations

from vix_ttl._enum import ValueEnum

__all__ = ["VixStatus"]


class VixStatus(ValueEnum):
    """How volatile the data behind a cache entry is right now.

    Members are their string values (``VixStatus.PANIC == "panic"``, also as
    mapping keys); ``VixStatus.coerce`` takes a member or a value in any case.
    """

    NORMAL = "normal"
    WARNING = "warning"
    PANIC = "panic"
