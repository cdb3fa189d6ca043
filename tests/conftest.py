from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vix_ttl.testing import forget_breakers


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    """Each test sees an empty breaker registry."""
    forget_breakers()
    yield
    forget_breakers()


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A test that configures logging (the CLI does, a README example may) leaves no trace."""
    loggers = [logging.getLogger(), logging.getLogger("vix_ttl")]
    before = [(logger, logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    yield
    for logger, handlers, level, propagate in before:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


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


# A Redis Cluster of 3 masters, and a master + replica watched by 3 Sentinels (.ci/services.sh).
CLUSTER_PORTS = [int(p) for p in os.environ.get("REDIS_CLUSTER_PORTS", "7391 7392 7393").split()]
SENTINEL_PORTS = [int(p) for p in os.environ.get("SENTINEL_PORTS", "26391 26392 26393").split()]
SENTINEL_DATA_PORTS = [int(p) for p in os.environ.get("SENTINEL_DATA_PORTS", "7394 7395").split()]
SENTINEL_MASTER = os.environ.get("SENTINEL_MASTER", "vixmaster")


@pytest.fixture
def cluster_ports() -> list[int]:
    """The ports of the Redis Cluster's masters."""
    for port in CLUSTER_PORTS:
        require_server("the Redis Cluster", port)
    return CLUSTER_PORTS


@pytest.fixture
def sentinel_ports() -> list[int]:
    """The ports of the 3 Sentinels watching ``SENTINEL_MASTER``."""
    for port in SENTINEL_PORTS:
        require_server("Redis Sentinel", port)
    return SENTINEL_PORTS


# -- applications under a real uvicorn -------------------------------------------

Uvicorn = Callable[..., "Served"]


class Served:
    """An application uvicorn serves on loopback: its base URL and its process."""

    def __init__(self, url: str, process: subprocess.Popen[bytes]) -> None:
        self.url, self.process = url, process

    def memory(self, field: str = "VmRSS") -> int:
        """The server process's memory in bytes: ``VmRSS`` now, or ``VmHWM``, its peak."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        raise LookupError(field)


@pytest.fixture
def uvicorn() -> Iterator[Uvicorn]:
    """Start ``uvicorn APP`` on a free loopback port, in a process of its own as in production,
    with extra environment; returns once *ready* (a path) answers."""
    import httpx

    started: list[subprocess.Popen[bytes]] = []

    def start(app: str, *options: str, ready: str = "/", **env: str) -> Served:
        """In memory unless *env* gives ``REDIS_URL`` (the one the suite runs with is not inherited)."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        inherited = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
        process = subprocess.Popen(
            [*command, "--log-level", "warning", *options],
            cwd=Path(__file__).parent.parent,
            env={**inherited, **env},
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:  # a server starting, not time logic: wait until it answers
            try:
                httpx.get(f"{url}{ready}", timeout=1)
                return Served(url, process)
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{app} did not start on {url}") from None
                time.sleep(0.1)

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that need a server, so `-m "not redis"` selects around them."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if {"redis_port", "redis_process", "cluster_ports", "sentinel_ports"} & set(fixtures):
            item.add_marker(pytest.mark.redis)
        if "memcached_port" in fixtures:
            item.add_marker(pytest.mark.memcached)
