"""VixCacheMiddleware's hit against the bare FastAPI app's call, in process (no sockets)."""

from __future__ import annotations

import asyncio

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.asgi_calls import call_loop
from benchmarks.conftest import compare
from benchmarks.http_peers import build


@pytest.mark.benchmark(group="http")
def test_middleware_hit_vs_the_bare_app(benchmark: BenchmarkFixture, loop: asyncio.AbstractEventLoop) -> None:
    # The bare app answers at once (no backend time): what the middleware's hit spares is
    # FastAPI's routing, validation and JSON; what it costs is the key, the lookup, the headers.
    compare(
        benchmark,
        "VixCacheMiddleware hit / the bare FastAPI app's call",
        call_loop(loop, build("middleware", 0), "/odds/match-1"),
        call_loop(loop, build("none", 0), "/odds/match-1"),
        0.2,
        n=500,
    )
