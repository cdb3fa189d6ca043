"""The argument checks every constructor shares: the error names the parameter and what it takes.

``TypeError`` for a value of the wrong kind, ``ValueError`` for one of the right kind out of range.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vix_ttl._checks import (
    check_clock,
    check_count,
    check_name,
    check_seconds,
    check_time,
    check_ttl,
    missing_extra,
)

SECONDS = "must be a number of seconds"


@pytest.mark.parametrize(
    ("check", "error", "message"),
    [
        (lambda: check_seconds("lease", "5"), TypeError, f"lease {SECONDS}, got '5'"),
        (lambda: check_seconds("lease", True), TypeError, f"lease {SECONDS}, got True"),
        (lambda: check_seconds("lease", None), TypeError, f"lease {SECONDS}, got None"),
        (
            lambda: check_seconds("lease", -1),
            ValueError,
            "lease must be a finite number of seconds >= 0, got -1",
        ),
        (lambda: check_seconds("lease", math.nan), ValueError, "lease must be a finite .* >= 0, got nan"),
        (lambda: check_seconds("lease", math.inf), ValueError, "lease must be a finite .* >= 0, got inf"),
        (lambda: check_seconds("lease", 0, positive=True), ValueError, "lease must be .* seconds > 0, got 0"),
        (lambda: check_seconds("lease", 10**400), ValueError, f"lease {SECONDS}, got an int of 1329 bits"),
        (lambda: check_count("workers", 0, minimum=1), ValueError, "workers must be an int >= 1, got 0"),
        (lambda: check_count("workers", 2.0, minimum=1), TypeError, "workers must be an int >= 1, got 2.0"),
        (lambda: check_count("workers", True, minimum=0), TypeError, "workers must be an int >= 0, got True"),
        (lambda: check_name("namespace", ""), ValueError, "namespace must be a non-empty string, got ''"),
        (
            lambda: check_name("namespace", b"odds"),
            TypeError,
            "namespace must be a non-empty string, got b'odds'",
        ),
        (
            lambda: check_time("start", math.inf),
            ValueError,
            "start must be a finite number of seconds, got inf",
        ),
        (lambda: check_time("start", "now"), TypeError, f"start {SECONDS}, got 'now'"),
        (
            lambda: check_ttl("ttl", -0.5),
            ValueError,
            r"ttl must be >= 0 seconds, or None / math.inf .*got -0.5",
        ),
        (lambda: check_ttl("ttl", math.nan), ValueError, "ttl must be >= 0 seconds, or None / math.inf"),
        (
            lambda: check_ttl("ttl", "60"),
            TypeError,
            r"ttl must be a number of seconds or None \(never expires\)",
        ),
        (lambda: check_clock("clock", 5.0), TypeError, "clock must be a zero-argument callable .*, got 5.0"),
        (
            lambda: check_clock("clock", lambda now: now),
            TypeError,
            "clock must be callable with no arguments",
        ),
        (lambda: check_clock("clock", lambda: "12:00"), TypeError, "clock must return a number .*'12:00'"),
        (
            lambda: check_clock("clock", lambda: False),
            TypeError,
            "clock must return a number .*returned False",
        ),
        (lambda: check_clock("clock", lambda: -math.inf), ValueError, "clock must return a finite number"),
        (
            lambda: check_clock("clock", lambda: 10**400),
            ValueError,
            "clock's reading must be a number .* bits",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_the_parameter_and_what_it_takes(
    check: Callable[[], Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=f"^{message}"):
        check()


@given(st.one_of(st.floats(min_value=0, allow_infinity=False), st.integers(min_value=0, max_value=10**300)))
def test_every_finite_number_of_seconds_comes_back_as_a_float(value: float) -> None:
    seconds = check_seconds("lease", value)
    assert type(seconds) is float and seconds == float(value)
    assert check_time("start", -value) == -float(value)
    assert check_ttl("ttl", value) == float(value)


@pytest.mark.parametrize("never", [None, math.inf])
def test_a_ttl_that_never_expires_is_infinite(never: float | None) -> None:
    assert check_ttl("ttl", never) == math.inf


def test_a_clock_is_read_once_where_it_is_given_and_returned_as_it_is() -> None:
    readings: list[float] = []

    def clock() -> float:
        readings.append(1.5)
        return 1.5

    assert check_clock("clock", clock) is clock
    assert readings == [1.5]


def test_a_type_error_inside_a_clock_with_no_parameters_is_said_as_a_call_that_failed() -> None:
    def clock() -> float:
        raise TypeError("unsupported operand")

    with pytest.raises(TypeError, match=r"^clock must be callable with no arguments: unsupported operand$"):
        check_clock("clock", clock)


def test_a_missing_extra_names_the_extra_and_the_command_that_installs_it() -> None:
    error = missing_extra(
        "vix_ttl.fleet", "redis", ModuleNotFoundError("No module named 'redis.asyncio'", name="redis.asyncio")
    )
    assert str(error) == (
        "vix_ttl.fleet needs the 'redis' extra (redis is not installed): pip install 'vix_ttl[redis]'"
    )
    assert error.name == "redis.asyncio"


@pytest.mark.parametrize(
    ("module", "extra"), [("aiocache", "aiocache"), ("prometheus", "prometheus"), ("fleet", "redis")]
)
def test_an_edge_without_its_extra_says_which_to_install(module: str, extra: str) -> None:
    blocked = "for name in ('aiocache', 'prometheus_client', 'redis'): sys.modules[name] = None"
    done = subprocess.run(
        [sys.executable, "-c", f"import sys\n{blocked}\nimport vix_ttl.{module}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert f"vix_ttl.{module} needs the '{extra}' extra" in done.stderr
    assert f"pip install 'vix_ttl[{extra}]'" in done.stderr
