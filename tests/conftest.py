from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

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
# `make test` and .ci/run start the servers under .ci/with-services (.ci/services.sh): this
# run's own, on ports picked free for it and exported in the variables below (the tests flush
# their servers, so two runs never share one). Run alone, pytest skips the backend tests with
# the reason; under VIX_TTL_REQUIRE_SERVERS=1 (CI) a missing server fails them instead.

RUN_UNDER_SERVICES = (
    "the backend tests run under .ci/with-services, which starts this run's own servers on free "
    "ports and exports them: run `make test`, or "
    "`bash .ci/with-services .venv/bin/python -m pytest tests`"
)


def _ports(variable: str) -> list[int]:
    return [int(port) for port in os.environ.get(variable, "").split()]


# The Sentinels' master and its replica (the fixtures read the other ports).
SENTINEL_DATA_PORTS = _ports("SENTINEL_DATA_PORTS")
SENTINEL_MASTER = os.environ.get("SENTINEL_MASTER", "vixmaster")


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def unavailable(message: str) -> NoReturn:
    """Skip the test for *message*; fail it under VIX_TTL_REQUIRE_SERVERS=1 (CI)."""
    if os.environ.get("VIX_TTL_REQUIRE_SERVERS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def require_server(name: str, port: int) -> None:
    if not _listening(port):
        unavailable(f"{name} is not listening on 127.0.0.1:{port}; {RUN_UNDER_SERVICES}")


def require_binary(binary: str, package: str) -> str:
    """The path of *binary*, a server the test starts itself; else the test is skipped (or failed)."""
    path = shutil.which(binary)
    if path is None:
        unavailable(f"no {binary} on PATH: .ci/with-services installs Debian's {package} (as root)")
    return path


def server_ports(variable: str, name: str) -> list[int]:
    """The ports in ``$variable``, each with *name* listening; else the test is skipped (or failed)."""
    ports = _ports(variable)
    if not ports:
        unavailable(f"${variable} is not set: {RUN_UNDER_SERVICES}")
    for port in ports:
        require_server(name, port)
    return ports


@pytest.fixture
def redis_port() -> int:
    return server_ports("REDIS_PORT", "Redis")[0]


@pytest.fixture
def memcached_port() -> int:
    return server_ports("MEMCACHED_PORT", "memcached")[0]


@pytest.fixture
def cluster_ports() -> list[int]:
    """The ports of the Redis Cluster's masters."""
    return server_ports("REDIS_CLUSTER_PORTS", "the Redis Cluster")


@pytest.fixture
def sentinel_ports() -> list[int]:
    """The ports of the 3 Sentinels watching ``SENTINEL_MASTER`` (on ``SENTINEL_DATA_PORTS``)."""
    if not SENTINEL_DATA_PORTS:
        unavailable(f"$SENTINEL_DATA_PORTS is not set: {RUN_UNDER_SERVICES}")
    return server_ports("SENTINEL_PORTS", "Redis Sentinel")


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
