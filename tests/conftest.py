from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
import structlog

from vix_ttl.testing import forget_breakers


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    """Each test sees an empty breaker registry."""
    forget_breakers()
    yield
    forget_breakers()


@pytest.fixture(autouse=True)
def _default_structlog() -> Iterator[None]:
    """A test that configures structlog (the CLI does) leaves no trace."""
    yield
    structlog.reset_defaults()


# -- real cache servers ---------------------------------------------------------
# `make test` and .ci/run start Redis and memcached (.ci/services.sh). Run alone,
# pytest skips the backend tests with the reason; under VIX_TTL_REQUIRE_SERVERS=1
# (CI) a missing server fails them instead.

REDIS_PORT = int(os.environ.get("REDIS_PORT", "6390"))
MEMCACHED_PORT = int(os.environ.get("MEMCACHED_PORT", "11290"))


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def require_server(name: str, port: int) -> None:
    if _listening(port):
        return
    message = f"{name} is not listening on 127.0.0.1:{port}; run `make test` (it starts it)"
    if os.environ.get("VIX_TTL_REQUIRE_SERVERS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def redis_port() -> int:
    require_server("Redis", REDIS_PORT)
    return REDIS_PORT


@pytest.fixture
def memcached_port() -> int:
    require_server("memcached", MEMCACHED_PORT)
    return MEMCACHED_PORT


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that need a server, so `-m "not redis"` selects around them."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "redis_port" in fixtures or "redis_process" in fixtures:
            item.add_marker(pytest.mark.redis)
        if "memcached_port" in fixtures:
            item.add_marker(pytest.mark.memcached)
