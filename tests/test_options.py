"""The options of ``@vix_cached``, checked once at decoration time (each error names the option
and what it takes), and what a decorated function says when its own callables misbehave."""

from __future__ import annotations

import math
from typing import Any

import cachetools
import pytest

from vix_ttl import VixStatus
from vix_ttl._cache.options import CacheOptions, Options
from vix_ttl.decorator import vix_cached


def normal(*args: Any, **kwargs: Any) -> str:
    return "normal"


OWN = {"cache": None, "maxsize": 4096, "key": None, "namespace": None}


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((-1,), {"status": normal}, ValueError, "ttl must be >= 0 seconds"),
        (("60",), {"status": normal}, TypeError, "ttl must be a number"),
        ((60,), {"status": "normal"}, TypeError, "status= must be a callable"),
        ((60,), {"status": normal, "warning_ttl": float("nan")}, ValueError, "warning_ttl"),
        ((60,), {"status": normal, "clock": lambda: "now"}, TypeError, "clock must return a number"),
        ((60,), {"status": normal, "clock": lambda: float("nan")}, ValueError, "clock must return a finite"),
        ((60,), {"status": normal, "secret": "short"}, ValueError, "at least 16 bytes"),
        ((60,), {"status": normal, "secret": b"\0" * 16}, ValueError, "at least 8 different bytes"),
        (
            (60,),
            {"status": normal, "secret": ["a" * 32, "ab" * 16]},
            ValueError,
            "at least 8 different bytes",
        ),
        (
            (10**400,),
            {"status": normal},
            ValueError,
            "ttl must be a number of seconds .*, got an int of 1329",
        ),
        (
            (60,),
            {"status": normal, "stale_if_error": 10**400},
            ValueError,
            "stale_if_error .* int of 1329 bits",
        ),
        ((60,), {"status": normal, "namespace": ""}, ValueError, "namespace must be a non-empty string"),
        ((60,), {"status": normal, "namespace": 3}, TypeError, "namespace must be a non-empty string"),
        ((60,), {"status": normal, "maxsize": 0}, ValueError, "maxsize must be an int >= 1"),
        ((60,), {"status": normal, "maxsize": "10"}, TypeError, "maxsize must be an int >= 1"),
        ((60,), {"status": normal, "key": "match"}, TypeError, "key must be a callable"),
        ((60,), {"status": normal, "coalesce": "yes"}, TypeError, "coalesce must be True or False"),
        ((60,), {"status": normal, "clock": 5}, TypeError, "clock must be a zero-argument callable"),
        ((60,), {"status": normal, "breaker": 5}, TypeError, "breaker must be a VIXCircuitBreaker"),
    ],
)
def test_bad_arguments_fail_at_decoration_time(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        vix_cached(*args, **kwargs)


def test_a_cache_passed_as_the_ttl_says_to_pass_it_as_cache() -> None:
    with pytest.raises(TypeError, match=r"got the cache TTLCache\(\.\.\.\): pass it as cache="):
        vix_cached(cachetools.TTLCache(maxsize=10, ttl=60))  # type: ignore[arg-type]


def test_an_unknown_option_is_named_with_the_allowed_ones() -> None:
    with pytest.raises(
        TypeError, match=r"unknown option stale \(allowed: ttl, cache, .*stale_while_revalidate"
    ):
        vix_cached(60, status=lambda x: "normal", stale=5)  # type: ignore[call-arg]


def test_bare_decorator_says_what_to_write() -> None:
    with pytest.raises(TypeError, match=r"write @vix_cached\(60, status=.*written @vix_cached alone"):

        @vix_cached
        def price(match: str) -> float:
            return 2.0


def test_a_missing_status_says_what_it_must_be() -> None:
    with pytest.raises(TypeError, match="status= must be a callable taking the call's arguments"):
        vix_cached(60)


def test_a_status_function_of_the_wrong_arity_is_named_with_the_arguments() -> None:
    def match_status() -> str:
        return "normal"

    @vix_cached(60, status=match_status)
    def price(match: str, *, market: str = "1x2") -> float:
        return 2.0

    message = r"status function .*match_status cannot take the call's arguments \('m1', market='ou'\)"
    with pytest.raises(TypeError, match=message):
        price("m1", market="ou")


def test_a_type_error_inside_the_status_function_is_its_own() -> None:
    @vix_cached(60, status=lambda match: match + 1)
    def price(match: str) -> float:
        return 2.0

    with pytest.raises(TypeError, match="can only concatenate str"):
        price("m1")


def test_ttl_and_key_functions_of_the_wrong_arity_are_named() -> None:
    @vix_cached(lambda: 60, status=lambda match: "normal")
    def price(match: str) -> float:
        return 2.0

    with pytest.raises(TypeError, match=r"the ttl function .* cannot take the call's arguments \('m1'\)"):
        price("m1")

    @vix_cached(60, status=lambda match: "normal", key=lambda: "k")
    def keyed(match: str) -> float:
        return 2.0

    with pytest.raises(TypeError, match=r"the key function .* cannot take the call's arguments \('m1'\)"):
        keyed("m1")


def test_a_bad_status_from_the_status_function_is_a_clear_error() -> None:
    @vix_cached(60, status=lambda x: "calm")
    def price(x: int) -> int:
        return x

    with pytest.raises(ValueError, match=r"the status function returned invalid VixStatus 'calm'"):
        price(1)


def test_a_bad_ttl_from_the_ttl_function_is_a_clear_error() -> None:
    @vix_cached(lambda x: -1, status=normal)
    def price(x: int) -> int:
        return x

    with pytest.raises(ValueError, match=r"the ttl function returned an invalid value: ttl must be"):
        price(1)


def test_the_checked_options_hold_each_statuss_base_ttl_resolved() -> None:
    options = Options.checked(60, OWN, {"status": normal})
    assert options.bases == {
        VixStatus.NORMAL: (VixStatus.NORMAL, 60.0),
        VixStatus.WARNING: (VixStatus.WARNING, 60.0),  # the NORMAL one, unless warning_ttl says
        VixStatus.PANIC: (VixStatus.PANIC, 0.0),  # PANIC's base is 0, whatever the caller's
    }
    assert type(options.bases[VixStatus.NORMAL][1]) is float  # the engine tells a ttl function by it
    assert (options.coalesce, options.signer, options.clock, options.early_refresh) == (True, None, None, 0.0)
    assert not options.stale_while_revalidate and not options.stale_if_error

    def per_call(match: int) -> float:
        return 30.0

    options = Options.checked(None, OWN, {"status": normal, "warning_ttl": per_call})
    assert options.bases[VixStatus.NORMAL][1] == math.inf  # None: never expires
    assert options.bases[VixStatus.WARNING][1] is per_call  # a callable: asked per call


def test_every_option_vix_cached_takes_besides_its_own_is_a_cache_option() -> None:
    with pytest.raises(TypeError) as refused:
        Options.checked(60, OWN, {"status": normal, "nope": 1})
    allowed = str(refused.value).split("(allowed: ")[1].rstrip(")").split(", ")
    assert allowed == ["ttl", *OWN, *CacheOptions.__annotations__]
    for option in CacheOptions.__annotations__:  # none is refused as unknown
        with pytest.raises((TypeError, ValueError)) as bad:
            Options.checked(60, OWN, {"status": normal, option: object()} if option != "status" else {})
        assert "unknown option" not in str(bad.value)


def test_a_functions_errors_name_it() -> None:
    @vix_cached(60, status=lambda match: "calm")
    def price(match: int) -> int:
        return match

    with pytest.raises(ValueError, match=rf"^vix_cached\({__name__}\.{price.__qualname__}\): the status"):
        price(1)


def test_a_lambda_over_a_shared_cache_needs_a_namespace() -> None:
    shared: dict[Any, Any] = {}
    with pytest.raises(TypeError, match=r"a lambda over a shared cache needs namespace="):
        vix_cached(60, status=lambda m: "normal", cache=shared)(lambda m: f"price of {m}")
    price = vix_cached(60, status=lambda m: "normal", cache=shared, namespace="price")(lambda m: f"price {m}")
    volume = vix_cached(60, status=lambda m: "normal", cache=shared, namespace="volume")(
        lambda m: f"volume {m}"
    )
    assert (price(1), volume(1)) == ("price 1", "volume 1")
