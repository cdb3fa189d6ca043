"""VixCacheMiddleware against a hostile client, under a real uvicorn: the attacks that depend on
what a server puts in the scope (a trusted ``X-Forwarded-Proto``, raw paths and queries, a
GET's body as the server frames it) and on a real process's memory.

The application is ``tests/hostile_app.py``, the middleware with its defaults.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import Served, Uvicorn
from tests.hostile_app import PAGE

MiB = 1_048_576


@pytest.fixture
def server(uvicorn: Uvicorn) -> Served:
    # uvicorn trusts X-Forwarded-Proto from loopback by default, as from a local proxy.
    return uvicorn("tests.hostile_app:app", ready="/stats")


def computes(server: Served) -> dict[str, int]:
    counted: dict[str, int] = httpx.post(f"{server.url}/stats").json()
    return counted


def test_a_forwarded_scheme_never_reaches_the_other_schemes_clients(server: Served) -> None:
    with httpx.Client(base_url=server.url) as http:
        attack = http.get("/echo", headers={"x-forwarded-proto": "http"})
        tls = http.get("/echo", headers={"x-forwarded-proto": "https"})
        tls_again = http.get("/echo", headers={"x-forwarded-proto": "https"})
    assert attack.json()["url"].startswith("http://")
    assert tls.json()["url"].startswith("https://") and tls.headers["x-vix-cache"] == "miss"
    assert tls_again.headers["x-vix-cache"] == "hit" and tls_again.json() == tls.json()


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("/echo?x=%FF", "/echo?x=%FE"),
        ("/echo?flag", "/echo?flag="),
        ("/echo?a=1;b=2", "/echo?a=1%3Bb%3D2"),
        ("/files/a%2Fb", "/files/a/b"),
    ],
)
def test_requests_that_differ_in_their_bytes_never_share_a_key(server: Served, one: str, other: str) -> None:
    with httpx.Client(base_url=server.url) as http:
        first = http.get(one)
        second = http.get(other)
        again = http.get(one)
    assert second.headers["x-vix-cache"] == "miss" and second.json()["n"] == 2
    sent = other.partition("?")
    assert (second.json()["raw_path"], second.json()["query"]) == (sent[0], sent[2])  # as sent, not decoded
    assert again.headers["x-vix-cache"] == "hit" and again.json() == first.json()


def test_a_get_body_never_reaches_another_client(server: Served) -> None:
    with httpx.Client(base_url=server.url) as http:
        attack = http.request("GET", "/echo", content=b"<script>alert(1)</script>")
        victims = [http.get("/echo") for _ in range(3)]
    assert attack.json()["body"] == "<script>alert(1)</script>" and attack.headers["x-vix-cache"] == "bypass"
    assert all(victim.json()["body"] == "" for victim in victims)
    assert [victim.headers["x-vix-cache"] for victim in victims] == ["miss", "hit", "hit"]


def test_cache_busting_keeps_the_process_within_max_bytes(server: Served) -> None:
    async def bust() -> None:
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as http:
            queue = iter(range(1_000))

            async def worker() -> None:
                for n in queue:
                    response = await http.get(f"/big?cb={n}")
                    assert len(response.content) == PAGE and response.headers["x-vix-cache"] == "miss"

            await asyncio.gather(*(worker() for _ in range(8)))

    asyncio.run(bust())
    # 0.2 grew from 36 MiB to 1,038 MiB; the default store holds 64 MiB of responses.
    assert server.memory("VmHWM") < 64 * MiB + 100 * MiB
    assert computes(server)["big"] == 1_000
