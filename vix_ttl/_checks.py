"""Argument checks shared by the constructors: one wording for every boundary."""

from __future__ import annotations

import math

__all__ = ["check_seconds"]


def check_seconds(name: str, value: object, *, positive: bool = False) -> float:
    """*value* as float seconds, or an error naming *name* and what is allowed.

    Raises:
        TypeError: *value* is not a real number (``bool`` is not one).
        ValueError: it is not finite, or negative (zero too, if *positive*).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
    return float(value)
