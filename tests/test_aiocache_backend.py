"""What aiocache's backends take and give: expiries, keys as stored, which serializers may run
code, and the lease commands of its memory backend (memcached's and Redis's: tests/test_leases.py)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from aiocache import MemcachedCache, RedisCache, SimpleMemoryCache
from aiocache.serializers import (
    BaseSerializer,
    JsonSerializer,
    MsgPackSerializer,
    NullSerializer,
    PickleSerializer,
    StringSerializer,
)

from vix_ttl._aiocache_backend import (
    MEMCACHED_MAX_KEY,
    aiocache_leases,
    expire_seconds,
    key_bytes,
    memcached_safe,
    runs_code,
)
from vix_ttl._budget import Commands
from vix_ttl._redis import RedisLeases
from vix_ttl.aiocache import MEMCACHED_MAX_TTL, VixSerializer, backend_ttl


def test_backend_ttl_rules() -> None:
    memcached = MemcachedCache(port=1)
    redis = RedisCache(port=1)
    assert backend_ttl(memcached, 4.2) == 5  # whole seconds, rounded up
    assert backend_ttl(memcached, 90 * 24 * 3600) == MEMCACHED_MAX_TTL  # else read as a Unix time
    assert backend_ttl(redis, 0.0001) == 0.001  # a float is PSETEX ms: never 0
    assert backend_ttl(redis, 5) == 5.0
    assert backend_ttl(SimpleMemoryCache(), 2.5) == 2.5
    assert backend_ttl(redis, math.inf) is None  # never expires: no expiry at all
    assert backend_ttl(memcached, math.inf) is None


def test_a_metaclass_that_equals_everything_is_no_safe_serializer() -> None:
    class Equal(type):
        def __eq__(cls, other: object) -> bool:
            return True

        __hash__ = type.__hash__

    class Sly(PickleSerializer, metaclass=Equal):  # type: ignore[misc]
        pass

    with pytest.raises(ValueError, match="Sly may run code"):
        VixSerializer(Sly())


def test_expire_takes_whole_seconds_on_servers_and_any_seconds_in_memory() -> None:
    assert expire_seconds(MemcachedCache(port=1), 4.2) == 5
    assert expire_seconds(RedisCache(port=1), 0.0001) == 1  # rounded up: never expired at once
    assert expire_seconds(RedisCache(port=1), 4.2) == 5
    assert expire_seconds(SimpleMemoryCache(), 4.2) == 4.2


@pytest.mark.parametrize("safe", [NullSerializer, StringSerializer, JsonSerializer, MsgPackSerializer])
def test_aiocaches_serializers_of_data_run_no_code_but_their_subclasses_may(safe: type[Any]) -> None:
    assert not runs_code(safe())

    class Sub(safe):  # type: ignore[misc]
        pass

    assert runs_code(Sub())  # it may decode otherwise: unknown, so it may run code
    assert runs_code(PickleSerializer())


def test_a_serializers_author_may_state_whether_it_runs_code() -> None:
    class Declared(BaseSerializer):  # type: ignore[misc]
        runs_code = False

    class Insisting(JsonSerializer):  # type: ignore[misc]
        runs_code = True

    class Vague(PickleSerializer):  # type: ignore[misc]
        runs_code = "no"  # not a bool: not a statement

    assert (runs_code(Declared()), runs_code(Insisting()), runs_code(Vague())) == (False, True, True)


def test_the_key_as_the_backend_stores_it_namespace_included() -> None:
    assert key_bytes(SimpleMemoryCache(namespace="odds:"), "match-7") == b"odds:match-7"
    redis = RedisCache(port=1, namespace="odds")
    assert key_bytes(redis, "match-7") == b"odds:match-7"  # Redis's own separator
    assert key_bytes(redis, "match-7", namespace="other") == b"other:match-7"
    assert key_bytes(MemcachedCache(port=1, namespace="odds:"), "match 7") == b"odds:match_7"  # no spaces


@pytest.mark.parametrize(
    ("key", "safe"),
    [
        ("odds:match-7", True),
        ("k" * MEMCACHED_MAX_KEY, True),
        ("k" * (MEMCACHED_MAX_KEY + 1), False),
        ("odds match", False),  # aiocache rewrites spaces
        ("odds\nmatch", False),
        ("odds\x7fmatch", False),
        ("cote-d'ivoire-é", False),
        ("", True),
    ],
)
def test_memcached_safe_keys(key: str, safe: bool) -> None:
    assert memcached_safe(key) is safe


def test_each_backend_gets_its_own_lease_commands() -> None:
    commands = Commands(1.0)
    assert isinstance(aiocache_leases(RedisCache(port=1), commands), RedisLeases)
    assert type(aiocache_leases(MemcachedCache(port=1), commands)).__name__ == "_MemcachedLeases"
    assert type(aiocache_leases(SimpleMemoryCache(), commands)).__name__ == "_MemoryLeases"


async def test_the_memory_backends_lease_commands() -> None:
    leases = aiocache_leases(SimpleMemoryCache(namespace="leases:"), Commands(None))
    assert await leases.add("lease", "holder-1.0", 60, None)
    assert not await leases.add("lease", "holder-2.0", 60, None)  # held: one holder at a time
    assert await leases.peek("lease", None) == "holder-1.0"
    assert not await leases.swap("lease", "holder-2.0", "holder-2.1", 60, None)  # not its lease
    assert await leases.swap("lease", "holder-1.0", "holder-1.1", 60, None)  # a renewal
    await leases.drop("lease", "holder-1.0", None)  # an old value: not dropped
    assert await leases.peek("lease", None) == "holder-1.1"
    await leases.put("lease", "failed", 60, None)
    await leases.drop("lease", "failed", None)
    assert await leases.peek("lease", None) is None
    assert await leases.add("lease", "holder-3.0", 60, None)  # free again
