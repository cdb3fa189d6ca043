"""vix_ttl.aiocache: the serializer, the plugin, cached, and config dicts, on real servers."""

from __future__ import annotations

import math
import pickle
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiocache import MemcachedCache, RedisCache, SimpleMemoryCache, caches
from aiocache.serializers import (
    JsonSerializer,
    MsgPackSerializer,
    NullSerializer,
    PickleSerializer,
    StringSerializer,
)
from hypothesis import given
from hypothesis import strategies as st

from tests.harness import store_params
from vix_ttl import Mode, VIXCircuitBreaker, get_breaker
from vix_ttl._signing import signer_of
from vix_ttl.aiocache import VixPlugin, VixSerializer, cached
from vix_ttl.testing import FakeClock

SECRET = "test-secret-not-for-production"

SERIALIZERS: dict[str, tuple[Callable[[], Any], Any]] = {
    "string": (StringSerializer, "odds 1.85"),
    "pickle": (PickleSerializer, {"home": 1.85, "away": (2.1, None)}),
    "json": (JsonSerializer, {"home": 1.85, "away": [2.1, None]}),
    # encoding=None: with its default utf-8, aiocache's own msgpack serializer
    # cannot read binary payloads back from Redis or memcached.
    "msgpack": (lambda: MsgPackSerializer(encoding=None), [1.85, 2.1, None]),
}


def enter(breaker: VIXCircuitBreaker, mode: Mode) -> None:
    breaker.reset()
    panics = {Mode.NORMAL: 0, Mode.HIGH_VOLATILITY: 600, Mode.CIRCUIT_OPEN: 1000}[mode]
    for i in range(1000):
        breaker.record("panic" if i >= 1000 - panics else "normal")


@pytest.fixture(params=store_params(["memory", "redis", "memcached"]))
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    """Constructor arguments of one real aiocache backend, emptied first."""
    kind = request.param
    if kind == "memory":
        spec: dict[str, Any] = {"cache": SimpleMemoryCache}
    elif kind == "redis":
        spec = {"cache": RedisCache, "endpoint": "127.0.0.1", "port": request.getfixturevalue("redis_port")}
    else:
        spec = {
            "cache": MemcachedCache,
            "endpoint": "127.0.0.1",
            "port": request.getfixturevalue("memcached_port"),
        }
    probe = spec["cache"](**{k: v for k, v in spec.items() if k != "cache"})
    await probe.clear()
    await probe.close()
    yield spec


def build(spec: dict[str, Any], serializer: Any, plugins: list[Any] | None = None) -> Any:
    options = {k: v for k, v in spec.items() if k != "cache"}
    return spec["cache"](serializer=serializer, plugins=plugins or [VixPlugin()], **options)


@pytest.mark.parametrize("inner", list(SERIALIZERS))
async def test_every_aiocache_serializer_round_trips_through_every_backend(
    backend: dict[str, Any], inner: str
) -> None:
    serializer_class, value = SERIALIZERS[inner]
    clock = FakeClock(1_000_000)
    breaker = VIXCircuitBreaker(clock=clock)
    secret = SECRET if inner == "pickle" else None  # unpickling needs signed entries
    serializer = VixSerializer(serializer_class(), breaker=breaker, clock=clock, secret=secret)
    assert serializer.encoding == serializer_class().encoding
    cache = build(backend, serializer)
    await cache.set("match:42", value, ttl=60)
    assert await cache.get("match:42") == value
    clock.advance(60)
    assert await cache.get("match:42") is None  # past its TTL: a miss, even if the backend kept it
    await cache.close()


async def test_loads_follows_the_breakers_decision_now(backend: dict[str, Any]) -> None:
    clock = FakeClock(1_000_000)
    breaker = VIXCircuitBreaker(clock=clock, window_seconds=3600)
    status = {"value": "normal"}
    serializer = VixSerializer(breaker=breaker, status_of=lambda v: status["value"], clock=clock)
    cache = build(backend, serializer)
    enter(breaker, Mode.HIGH_VOLATILITY)
    status["value"] = "panic"
    await cache.set("odds", 1.85, ttl=2)  # HV x panic: floored to 5 s
    clock.advance(4.9)
    assert await cache.get("odds") == 1.85
    clock.advance(0.1)
    assert await cache.get("odds") is None
    await cache.close()


async def test_the_plugin_keeps_entries_in_the_backend_for_their_decided_ttl(redis_port: int) -> None:
    breaker = VIXCircuitBreaker(window_seconds=3600)
    serializer = VixSerializer(breaker=breaker, status_of=lambda v: v["status"])
    cache = RedisCache(endpoint="127.0.0.1", port=redis_port, serializer=serializer, plugins=[VixPlugin()])
    await cache.clear()
    enter(breaker, Mode.CIRCUIT_OPEN)
    await cache.set("calm", {"status": "normal"}, ttl=5)  # CO floors normal at 60 s
    assert 55_000 < await cache.raw("pttl", "calm") <= 60_000
    enter(breaker, Mode.NORMAL)
    await cache.set("hot", {"status": "panic"}, ttl=5)  # NORMAL x panic: bypass, written through
    assert 4_000 < await cache.raw("pttl", "hot") <= 5_000  # for the NORMAL base: set's 5 s
    assert await cache.get("hot") is None  # never served while its status is bypassed
    await cache.close()


async def test_a_bypassed_value_replaces_the_entry_and_older_entries_never_come_back(
    redis_port: int,
) -> None:
    clock = FakeClock(1_000_000)
    breaker = VIXCircuitBreaker(clock=clock, window_seconds=3600)
    serializer = VixSerializer(breaker=breaker, status_of=lambda v: v["status"], clock=clock)
    cache = RedisCache(endpoint="127.0.0.1", port=redis_port, serializer=serializer, plugins=[VixPlugin()])
    await cache.clear()
    await cache.set("odds", {"status": "normal", "price": 1.5}, ttl=60)
    saved = await cache.raw("get", "odds")  # what anyone who can write to the server can keep
    clock.advance(5)
    await cache.set("odds", {"status": "panic", "price": 3.4}, ttl=60)  # a bypass: replaces it
    clock.advance(5)
    assert await cache.get("odds") is None  # the calm 1.5 never comes back after the panic
    await cache.set("odds", {"status": "normal", "price": 3.5}, ttl=60)
    assert (await cache.get("odds"))["price"] == 3.5
    await cache.raw("set", "odds", saved)  # the older entry, copied back
    assert await cache.get("odds") is None  # older than one served: a miss
    await cache.close()


async def test_config_dict_by_dotted_path(redis_port: int) -> None:
    get_breaker("odds", window_seconds=3600)
    caches.set_config(
        {
            "default": {
                "cache": "aiocache.RedisCache",
                "endpoint": "127.0.0.1",
                "port": redis_port,
                "serializer": {
                    "class": "vix_ttl.aiocache.VixSerializer",
                    "breaker": "odds",
                    "serializer": {"class": "aiocache.serializers.JsonSerializer"},
                },
                "plugins": [{"class": "vix_ttl.aiocache.VixPlugin"}],
            },
        }
    )
    try:
        cache = caches.get("default")
        await cache.clear()
        assert isinstance(cache.serializer, VixSerializer)
        assert cache.serializer.breaker is get_breaker("odds")
        await cache.set("k", {"odds": [1.85]}, ttl=30)
        assert await cache.get("k") == {"odds": [1.85]}
        assert get_breaker("odds").samples == 1  # the status was recorded at set

        computes: list[int] = []

        @cached(alias="default", ttl=30, status=lambda match: "normal", breaker="odds")
        async def price(match: int) -> None:
            computes.append(match)
            # aiocache's own decorator cannot cache None

        assert await price(1) is None
        assert await price(1) is None
        assert computes == [1]
        assert price.cache_info().hits == 1
        await cache.close()
    finally:
        caches.set_config({"default": {"cache": "aiocache.SimpleMemoryCache"}})


async def test_cached_from_arguments_like_aiocache() -> None:
    computes: list[int] = []

    @cached(
        ttl=10,
        cache=SimpleMemoryCache,
        serializer=NullSerializer(),
        namespace="odds",
        status=lambda x: "warning",
        warning_ttl=20,
    )
    async def price(x: int) -> int:
        computes.append(x)
        return x

    assert [await price(1), await price(1)] == [1, 1]
    assert computes == [1]
    assert isinstance(price.cache, SimpleMemoryCache)
    assert price.cache.namespace == "odds"
    assert price.cache_info().hits == 1


async def test_cached_keeps_no_result_that_skip_cache_func_skips(redis_port: int) -> None:
    computes: list[int] = []

    @cached(
        ttl=10,
        cache=RedisCache,
        port=redis_port,
        namespace=f"skip-{id(computes)}",
        skip_cache_func=lambda result: result is None,
    )
    async def price(x: int) -> int | None:
        computes.append(x)
        return None if x < 0 else x

    assert [await price(-1), await price(-1), await price(1), await price(1)] == [None, None, 1, 1]
    assert computes == [-1, -1, 1]  # None is not kept (aiocache's own example); 1 is
    await price.cache.clear()
    await price.cache.close()


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_cached_with_noself_shares_a_methods_entries_between_instances(
    redis_port: int, store: str
) -> None:
    computes: list[int] = []
    where: dict[str, Any] = (
        {"cache": SimpleMemoryCache} if store == "memory" else {"cache": RedisCache, "port": redis_port}
    )

    class Odds:
        def __init__(self, book: str) -> None:
            self.book = book

        @cached(ttl=10, noself=True, namespace=f"noself-{id(computes)}", **where)
        async def price(self, match: int) -> int:
            computes.append(match)
            return match * 2

    # Keyed by the arguments without the instance: an instance of its repr (an address) is fine.
    # (0.2 called a method over a shared store with its instance twice: a TypeError.)
    assert [await Odds("a").price(1), await Odds("b").price(1), await Odds("b").price(2)] == [2, 2, 4]
    assert computes == [1, 2]
    await Odds.price.cache.clear()
    await Odds.price.cache.close()


def test_cached_refuses_a_skip_cache_func_it_cannot_call() -> None:
    with pytest.raises(TypeError, match="skip_cache_func must be a callable of the result, got True"):
        cached(ttl=10, skip_cache_func=True)


async def test_cached_without_a_ttl_never_expires_as_in_aiocache() -> None:
    clock = FakeClock(1_000_000)
    computes: list[int] = []

    @cached(cache=SimpleMemoryCache, breaker=VIXCircuitBreaker(clock=clock))
    async def price(x: int) -> int:
        computes.append(x)
        return x

    await price(1)
    clock.advance(10 * 365 * 24 * 3600)
    assert await price(1) == 1
    assert computes == [1]


@given(
    st.one_of(
        st.binary(),
        st.text(),
        st.none(),
        st.integers(),
        st.lists(st.integers()),
        st.tuples(st.text(), st.floats(), st.floats(), st.floats(), st.text(), st.binary()),
    )
)
def test_loads_of_garbage_is_a_miss_never_an_exception(raw: Any) -> None:
    serializer = VixSerializer(breaker=VIXCircuitBreaker(clock=FakeClock()))
    assert serializer.loads(raw) is None


@given(
    st.binary(),
    st.sampled_from(
        [
            "1.0|5.0|10.0|normal|0.25\n",  # the one valid, fresh header
            "nan|1|1|panic|0\n",
            "1|-5|0|normal|0\n",
            "1|5|0|calm|0\n",
            "1|5|0|normal|-1\n",
            "1|5|0|normal|nan\n",
            "1|5|0|normal\n",
        ]
    ),
)
def test_loads_of_a_corrupt_envelope_is_a_miss(payload: bytes, header: str) -> None:
    signer = signer_of(SECRET, owner="test")
    assert signer is not None
    serializer = VixSerializer(
        PickleSerializer(), breaker=VIXCircuitBreaker(clock=FakeClock()), clock=FakeClock(1.0), secret=SECRET
    )
    body = header.encode() + payload
    entry = (
        b"vix_ttl:2|" + signer.sign(None, body).encode() + b"|" + body
    )  # signed, so only the header is wrong
    try:
        unpickled = pickle.loads(payload)
    except Exception:
        unpickled = None
    fresh = header.startswith("1.0|")
    assert serializer.loads(entry) == (unpickled if fresh else None)


async def test_set_without_a_ttl_never_expires_as_in_aiocache(backend: dict[str, Any]) -> None:
    clock = FakeClock(1_000_000)
    serializer = VixSerializer(breaker=VIXCircuitBreaker(clock=clock), clock=clock)
    cache = build(backend, serializer)
    await cache.set("k", "v")  # no ttl, and the cache has none: never expires
    clock.advance(10 * 365 * 24 * 3600)
    assert await cache.get("k") == "v"
    await cache.set("k2", "v2", ttl=None)  # an explicit None too
    assert await cache.get("k2") == "v2"
    await cache.close()


async def test_the_serializers_own_ttl_then_the_caches_are_the_base(backend: dict[str, Any]) -> None:
    clock = FakeClock(1_000_000)
    breaker = VIXCircuitBreaker(clock=clock)
    cache = build(backend, VixSerializer(breaker=breaker, clock=clock, ttl=30))
    cache.ttl = 600
    await cache.set("k", "v")  # set gives no ttl: the serializer's own, 30 s
    clock.advance(29)
    assert await cache.get("k") == "v"
    clock.advance(1)
    assert await cache.get("k") is None
    cache.serializer = VixSerializer(breaker=breaker, clock=clock)
    await cache.set("k", "v")  # neither set nor serializer: the cache's 600 s
    clock.advance(599)
    assert await cache.get("k") == "v"
    clock.advance(1)
    assert await cache.get("k") is None
    await cache.close()


async def test_a_panic_value_has_a_base_of_zero_as_in_the_decorator(backend: dict[str, Any]) -> None:
    clock = FakeClock(1_000_000)
    breaker = VIXCircuitBreaker(clock=clock, window_seconds=3600)
    serializer = VixSerializer(breaker=breaker, status_of=lambda v: "panic", clock=clock)
    cache = build(backend, serializer)
    enter(breaker, Mode.HIGH_VOLATILITY)
    await cache.set("odds", 1.85, ttl=300)  # HV x panic: 5 s, not set's 300 s
    clock.advance(5)
    assert await cache.get("odds") is None
    enter(breaker, Mode.NORMAL)
    await cache.set("odds", 1.85)  # NORMAL x panic: bypassed, whatever the ttl
    assert await cache.get("odds") is None
    await cache.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"serializer": 3}, TypeError, "must be an aiocache serializer"),
        ({"serializer": "nowhere.Nothing"}, ValueError, "cannot import 'nowhere.Nothing'"),
        ({"breaker": 3}, TypeError, "breaker must be"),
        ({"status_of": 3}, TypeError, "status_of must be callable"),
        ({"ttl": -1}, ValueError, "ttl must be >= 0"),
        ({"ttl": "60"}, TypeError, "ttl must be a number of seconds"),
        ({"clock": 3}, TypeError, "clock must be"),
        ({"clock": lambda: "now"}, TypeError, "clock must return a number"),
        ({"clock": lambda: math.nan}, ValueError, "clock must return a finite number"),
        ({"serializer": PickleSerializer()}, ValueError, "PickleSerializer may run code.*secret="),
        (
            {"serializer": "aiocache.serializers.PickleSerializer"},
            ValueError,
            "PickleSerializer may run code.*secret=",
        ),
        ({"secret": "short"}, ValueError, "at least 16 bytes"),
        ({"secret": []}, TypeError, "secret must be"),
        ({"secret": 42}, TypeError, "secret must be"),
    ],
)
def test_serializer_bad_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        VixSerializer(**kwargs)


async def test_a_key_shaped_like_a_tombstones_is_never_served_one(redis_port: int) -> None:
    @cached(
        ttl=60,
        cache=RedisCache,
        port=redis_port,
        namespace=f"shaped-{id(redis_port)}-",
        serializer=StringSerializer(),
        key_builder=lambda f, name: name,
        secret="a secret of the service's own",
        status=lambda name: "normal",
    )
    async def profile(name: str) -> str:
        return f"profile of {name}"

    assert await profile("alice") == "profile of alice"
    await profile.invalidate("alice")  # alice's key now has a tombstone
    # A caller who picks the argument reads the tombstone's key: it is no entry (0.3's first cut served "").
    assert await profile("vix_ttl|gone|alice") == "profile of vix_ttl|gone|alice"
    assert await profile("alice") == "profile of alice"
    await profile.cache.clear()
    await profile.cache.close()


def test_caches_options_are_checked_when_it_is_built_and_name_it() -> None:
    with pytest.raises(ValueError, match=r"^vix_ttl.aiocache.cached: stale_if_error must be"):
        cached(ttl=5, stale_if_error=-1)
    with pytest.raises(TypeError, match=r"^vix_ttl.aiocache.cached: status= must be a callable"):
        cached(ttl=5, status="normal")
