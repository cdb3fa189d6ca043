"""The example odds service under a real uvicorn on loopback, called with httpx.

Each server is a process of its own (``python -m uvicorn examples.odds_service:app``),
as in production; the feed's phases are set through the example's environment.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import Uvicorn

Server = Callable[..., str]


@pytest.fixture
def serve(uvicorn: Uvicorn) -> Server:
    """Start the example with extra environment; its base URL once it answers."""
    return lambda **env: uvicorn("examples.odds_service:app", ready="/stats", **env).url


def max_age(response: httpx.Response) -> int:
    directives = dict(
        part.strip().partition("=")[::2] for part in response.headers["cache-control"].split(",")
    )
    return int(directives["max-age"])


CALM = {"VIX_EXAMPLE_CALM": "100000", "VIX_EXAMPLE_PANIC": "1"}


def test_calm_odds_are_cached_with_freshness_a_cdn_can_compute(serve: Server) -> None:
    url = serve(**CALM)
    with httpx.Client(base_url=url) as http:
        first = http.get("/odds/match-1")
        assert first.headers["x-vix-cache"] == "miss"
        assert (max_age(first), first.headers["age"]) == (60, "0")
        hits = [http.get("/odds/match-1") for _ in range(5)]
        stats = http.get("/stats").json()
    for hit in hits:
        assert hit.headers["x-vix-cache"] == "hit" and hit.content == first.content
        assert hit.headers["etag"] == first.headers["etag"]
        # max-age is the entry's fresh TTL (60 s in calm), Age its seconds since stored.
        assert max_age(hit) == 60 and 0 <= int(hit.headers["age"]) < 60
    assert stats["computes"]["total"] == 1 and stats["mode"] == "normal"


def test_304_and_head(serve: Server) -> None:
    url = serve(**CALM)
    with httpx.Client(base_url=url) as http:
        first = http.get("/odds/match-2")
        not_modified = http.get("/odds/match-2", headers={"if-none-match": first.headers["etag"]})
        head = http.head("/odds/match-2")
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == first.headers["etag"]


def test_panic_odds_are_not_stored_anywhere(serve: Server) -> None:
    url = serve(VIX_EXAMPLE_CALM="2", VIX_EXAMPLE_PANIC="100000")
    with httpx.Client(base_url=url) as http:
        deadline = time.monotonic() + 30
        while http.get("/stats").json()["statuses"]["match-3"] != "panic":  # the feed's panic begins
            assert time.monotonic() < deadline, "the feed never panicked"
            time.sleep(0.2)
        responses = [http.get("/odds/match-3") for _ in range(3)]
        computes = http.get("/stats").json()["computes"]["total"]
    for response in responses:
        # NORMAL mode, panic status: bypass, and nobody in front may keep it either.
        assert response.headers["x-vix-cache"] == "bypass"
        assert response.headers["cache-control"] == "no-store" and "age" not in response.headers
    assert computes == 3


def test_etags_are_the_same_in_every_process_and_differ_between_bodies(serve: Server) -> None:
    one = serve(PYTHONHASHSEED="1", **CALM)
    two = serve(PYTHONHASHSEED="2", **CALM)
    a = httpx.get(f"{one}/matches")
    b = httpx.get(f"{two}/matches")
    assert a.content == b.content and a.headers["etag"] == b.headers["etag"]
    assert a.headers["x-vix-cache"] == b.headers["x-vix-cache"] == "miss"  # each computed its own
    assert httpx.get(f"{one}/odds/match-1").headers["etag"] != a.headers["etag"]


def test_processes_share_entries_through_redis(serve: Server, redis_port: int) -> None:
    namespace = f"test-{time.monotonic_ns()}"
    env = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}", "VIX_EXAMPLE_NAMESPACE": namespace, **CALM}
    one, two = serve(PYTHONHASHSEED="1", **env), serve(PYTHONHASHSEED="2", **env)
    public = {"host": "odds.example"}  # as behind a load balancer: one name for the fleet
    first = httpx.get(f"{one}/odds/match-4", headers=public)
    second = httpx.get(f"{two}/odds/match-4", headers=public)
    assert first.headers["x-vix-cache"] == "miss"
    assert second.headers["x-vix-cache"] == "hit"  # the other process's entry, signed, from Redis
    assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
    assert httpx.get(f"{two}/stats").json()["computes"]["total"] == 0
