"""Argument checks shared by the constructors: one wording for every boundary.

One error type per kind of mistake: ``TypeError`` when a value is not of the
kind asked for (a string where seconds go, a clock that is not callable or
does not return a number), ``ValueError`` when it is of the right kind but
out of range (negative, NaN, infinite where a finite number is needed).
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["as_float", "check_clock", "check_count", "check_name", "check_seconds", "check_time", "check_ttl"]


def as_float(name: str, value: object, kind: str) -> float:
    """*value* as a float, or an error naming *name* and what it must be (*kind*).

    Raises:
        TypeError: *value* is not a real number (``bool`` is not one).
        ValueError: it is an int beyond a float's range (``10**400``): no number of seconds.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    try:
        return float(value)
    except OverflowError:  # an int's repr may be too long to print: its size says enough
        raise ValueError(f"{name} must be {kind}, got an int of {int(value).bit_length()} bits") from None


def check_seconds(name: str, value: object, *, positive: bool = False) -> float:
    """*value* as float seconds, or an error naming *name* and what is allowed.

    Raises:
        TypeError: *value* is not a real number (``bool`` is not one).
        ValueError: it is not finite, or negative (zero too, if *positive*).
    """
    seconds = as_float(name, value, "a number of seconds")
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
    return seconds


def check_count(name: str, value: object, *, minimum: int) -> int:
    """*value* as a whole number >= *minimum*.

    Raises:
        TypeError: *value* is not an int (``bool`` is not one).
        ValueError: it is below *minimum*.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_name(name: str, value: object) -> str:
    """*value* as a non-empty string.

    Raises:
        TypeError: *value* is not a string.
        ValueError: it is empty.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a non-empty string, got {value!r}")
    if not value:
        raise ValueError(f"{name} must be a non-empty string, got ''")
    return value


def check_time(name: str, value: object) -> float:
    """*value* as a clock reading: any finite number of seconds.

    Raises:
        TypeError: *value* is not a real number.
        ValueError: it is NaN or infinite.
    """
    seconds = as_float(name, value, "a number of seconds")
    if not math.isfinite(seconds):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return seconds


def check_ttl(name: str, value: object) -> float:
    """A TTL as float seconds: ``None`` and ``math.inf`` mean "never expires" (``math.inf``).

    Raises:
        TypeError: *value* is neither None nor a real number.
        ValueError: it is NaN or negative.
    """
    if value is None:
        return math.inf
    ttl = as_float(name, value, "a number of seconds or None (never expires)")
    if not ttl >= 0:  # NaN fails this too
        raise ValueError(f"{name} must be >= 0 seconds, or None / math.inf to never expire, got {value!r}")
    return ttl


def check_clock(name: str, clock: object) -> Callable[[], float]:
    """*clock*, once it is callable and its first reading is a finite number.

    The first reading happens here, at construction, so a clock that returns a
    string or NaN fails where it is given, not at the first request.

    Raises:
        TypeError: *clock* is not callable, or returns something other than a number.
        ValueError: it returns NaN or an infinity.
    """
    if not callable(clock):
        raise TypeError(f"{name} must be a zero-argument callable returning seconds, got {clock!r}")
    try:
        now = clock()
    except TypeError as exc:
        raise TypeError(f"{name} must be callable with no arguments: {exc}") from None
    if isinstance(now, bool) or not isinstance(now, int | float):
        raise TypeError(f"{name} must return a number of seconds, but {clock!r} returned {now!r}")
    if not math.isfinite(as_float(f"{name}'s reading", now, "a number of seconds")):
        raise ValueError(f"{name} must return a finite number of seconds, but {clock!r} returned {now!r}")
    return clock


def missing_extra(module: str, extra: str, error: ImportError) -> ImportError:
    """The error of importing *module* without its *extra*: which one to install."""
    return ImportError(
        f"{module} needs the {extra!r} extra ({(error.name or str(error)).split('.')[0]} is not installed): "
        f"pip install 'vix_ttl[{extra}]'",
        name=error.name,
    )
