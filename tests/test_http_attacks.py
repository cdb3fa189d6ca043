"""VixCacheMiddleware against a hostile client, in process (httpx's ASGI transport or raw ASGI).

Each test is an attack an adversarial review made work against 0.2: a client poisoning the
page others get, making keys collide, sending every request to the backend, breaking
coalescing with one odd request, filling the memory, or making the cache promise more
freshness than the application allows. ``test_http_attacks_server.py`` repeats the ones
that depend on what a real server puts in the scope.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.harness import get_scope
from vix_ttl import VIXCircuitBreaker
from vix_ttl.asgi import VixCacheMiddleware
from vix_ttl.testing import FakeClock


class Backend:
    """A Starlette app that counts its computations per route and can be held mid-computation."""

    def __init__(self) -> None:
        self.computes: dict[str, int] = {}
        self.gate = asyncio.Event()
        self.gate.set()
        self.headers: dict[str, str] = {}  # what /page answers with, as a test sets it
        self.size = 1_000_000
        self.app = Starlette(
            routes=[
                Route("/page", self.page),
                Route("/echo", self.echo),
                Route("/ranged", self.ranged),
                Route("/big", self.big),
                Route("/missing", self.missing),
                Route("/binary", self.binary),
            ]
        )

    def count(self, name: str) -> int:
        self.computes[name] = self.computes.get(name, 0) + 1
        return self.computes[name]

    async def page(self, request: Request) -> Response:
        return PlainTextResponse(f"page {self.count('page')}", headers=self.headers)

    async def echo(self, request: Request) -> Response:
        n = self.count("echo")
        return JSONResponse(
            {
                "n": n,
                "body": (await request.body()).decode(),
                "url": str(request.url),
                "query": request.url.query,
            }
        )

    async def ranged(self, request: Request) -> Response:
        """A page that honours Range and If-None-Match itself, and sets a session for newcomers."""
        n = self.count("ranged")
        await self.gate.wait()  # every request arrives while the first computes
        body = b"0123456789" * 10
        if request.headers.get("if-none-match") == '"v1"':
            return Response(status_code=304, headers={"etag": '"v1"'})
        if request.headers.get("x-newcomer"):
            response = Response(body)
            response.set_cookie("session", f"new-{n}")
            return response
        if request.headers.get("range") == "bytes=0-1":
            return Response(body[:2], status_code=206, headers={"content-range": f"bytes 0-1/{len(body)}"})
        return Response(body, headers={"etag": '"v1"'})

    async def big(self, request: Request) -> Response:
        self.count("big")
        return Response(b"x" * self.size)

    async def missing(self, request: Request) -> Response:
        self.count("missing")
        return PlainTextResponse("no such page", status_code=404)

    async def binary(self, request: Request) -> Response:
        self.count("binary")
        return Response(bytes(range(256)) * 400, media_type="application/octet-stream")


@pytest.fixture
def backend() -> Backend:
    return Backend()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


def cached(backend: Backend, clock: FakeClock, **options: Any) -> VixCacheMiddleware:
    breaker = VIXCircuitBreaker(clock=clock, min_samples=10**9)
    return VixCacheMiddleware(backend.app, ttl=60, breaker=breaker, status=lambda scope: "normal", **options)


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://odds.test")


def max_age(response: httpx.Response) -> int:
    said = dict(part.strip().partition("=")[::2] for part in response.headers["cache-control"].split(","))
    return int(said["max-age"])


# -- poisoning -------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_get_body_never_reaches_another_client(
    backend: Backend, clock: FakeClock, framing: str
) -> None:
    poison = b"<script>alert(1)</script>"

    async def chunked() -> AsyncIterator[bytes]:  # no length: sent with Transfer-Encoding: chunked
        yield poison

    content: Any = poison if framing == "content-length" else chunked()
    async with client(cached(backend, clock)) as http:
        attack = await http.request("GET", "/echo", content=content)
        assert attack.json()["body"] == poison.decode()  # the app answers its sender
        assert attack.headers["x-vix-cache"] == "bypass" and attack.headers["cache-control"] == "no-store"
        victims = [await http.get("/echo") for _ in range(3)]
    assert all(b"script" not in victim.content for victim in victims)
    assert [v.headers["x-vix-cache"] for v in victims] == ["miss", "hit", "hit"]


async def test_a_get_body_never_joins_nor_is_joined(backend: Backend, clock: FakeClock) -> None:
    app = cached(backend, clock)
    backend.gate.clear()
    async with client(app) as http:
        plain = asyncio.ensure_future(http.get("/ranged"))
        for _ in range(20):
            await asyncio.sleep(0)  # the plain request leads and waits in the app
        bodied = asyncio.ensure_future(http.request("GET", "/ranged", content=b"x-newcomer"))
        for _ in range(20):
            await asyncio.sleep(0)
        assert backend.computes["ranged"] == 2  # the bodied one ran on its own, not joined
        backend.gate.set()
        await asyncio.gather(plain, bodied)
        again = await http.get("/ranged")
    assert again.headers["x-vix-cache"] == "hit" and again.content == (await plain).content


async def test_the_scheme_is_part_of_the_key(backend: Backend, clock: FakeClock) -> None:
    app = cached(backend, clock)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://odds.test") as plain,
        client(app) as tls,
    ):
        assert (await plain.get("/echo")).json()["url"].startswith("http://")
        served = await tls.get("/echo")
    assert served.json()["url"].startswith("https://") and served.headers["x-vix-cache"] == "miss"


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("/echo?x=%FF", "/echo?x=%FE"),
        ("/echo?flag", "/echo?flag="),
        ("/echo?a=1;b=2", "/echo?a=1%3Bb%3D2"),
        ("/echo?q=a+b", "/echo?q=a%20b"),
        ("/echo?q=%C3%A9", "/echo?q=%c3%a9"),
    ],
)
async def test_queries_that_differ_in_their_bytes_never_share_a_key(
    backend: Backend, clock: FakeClock, one: str, other: str
) -> None:
    async with client(cached(backend, clock)) as http:
        first = await http.get(one)
        second = await http.get(other)
        again = await http.get(one)
    assert second.headers["x-vix-cache"] == "miss" and second.json()["query"] == other.partition("?")[2]
    assert again.headers["x-vix-cache"] == "hit" and again.json() == first.json()


async def test_a_raw_path_is_part_of_the_key(backend: Backend, clock: FakeClock) -> None:
    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["raw_path"])
        body = b"raw " + scope["raw_path"]
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": body})

    middleware = VixCacheMiddleware(app, ttl=60, clock=clock)
    for raw_path in (b"/a%2Fb", b"/a/b", b"/a%2Fb"):  # both decode to path "/a/b"
        scope = get_scope("/a/b", raw_path=raw_path)
        sent = await _run(middleware, scope)
        assert sent.body == b"raw " + raw_path
    assert seen == [b"/a%2Fb", b"/a/b"]


# -- the backend's protection ----------------------------------------------------------


async def test_a_client_cannot_send_every_request_to_the_backend(backend: Backend, clock: FakeClock) -> None:
    async with client(cached(backend, clock)) as http:
        responses = [
            await http.get("/page", headers={"cache-control": control, "pragma": "no-cache"})
            for control in ["no-cache", "max-age=0", "no-cache, max-age=0", "must-revalidate"] * 25
        ]
    assert backend.computes["page"] == 1
    assert all(r.text == "page 1" and max_age(r) == 60 for r in responses)


async def test_opted_in_revalidation_still_coalesces(backend: Backend, clock: FakeClock) -> None:
    app = cached(backend, clock, client_revalidation=True)
    async with client(app) as http:
        await http.get("/ranged")
        backend.gate.clear()
        forced = [
            asyncio.ensure_future(http.get("/ranged", headers={"cache-control": "no-cache"}))
            for _ in range(50)
        ]
        for _ in range(50):
            await asyncio.sleep(0)
        backend.gate.set()
        responses = await asyncio.gather(*forced)
    assert backend.computes["ranged"] == 2 and {r.status_code for r in responses} == {200}


async def _race(
    app: VixCacheMiddleware, backend: Backend, first: dict[str, str], others: int
) -> list[httpx.Response]:
    """*first* leads with its headers; *others* plain requests join it while the app computes."""
    backend.gate.clear()
    async with client(app) as http:
        leader = asyncio.ensure_future(http.get("/ranged", headers=first))
        for _ in range(20):
            await asyncio.sleep(0)
        rest = [asyncio.ensure_future(http.get("/ranged")) for _ in range(others)]
        for _ in range(20):
            await asyncio.sleep(0)
        backend.gate.set()
        return await asyncio.gather(leader, *rest)


@pytest.mark.parametrize(
    "odd", [{"range": "bytes=0-1"}, {"if-none-match": '"v1"'}, {"if-range": '"v1"', "range": "bytes=0-1"}]
)
async def test_one_ranged_or_conditional_leader_never_breaks_coalescing(
    backend: Backend, clock: FakeClock, odd: dict[str, str]
) -> None:
    responses = await _race(cached(backend, clock), backend, odd, 200)
    assert backend.computes["ranged"] <= 2  # 0.2: 201
    assert all(r.status_code == 200 and r.content == b"0123456789" * 10 for r in responses[1:])


async def test_a_leader_whose_response_sets_a_cookie_keeps_it_to_itself(
    backend: Backend, clock: FakeClock
) -> None:
    app = cached(backend, clock)
    newcomer, *others = await _race(app, backend, {"x-newcomer": "yes"}, 200)
    assert newcomer.cookies["session"] == "new-1" and newcomer.headers["cache-control"] == "no-store"
    assert backend.computes["ranged"] == 2  # the newcomer's, then one new leader's for the 200
    assert all("set-cookie" not in r.headers and r.content == b"0123456789" * 10 for r in others)


async def test_a_range_and_a_cookie_setting_request_cost_at_most_three(
    backend: Backend, clock: FakeClock
) -> None:
    app = cached(backend, clock)
    backend.gate.clear()
    async with client(app) as http:
        odd = [
            asyncio.ensure_future(http.get("/ranged", headers={"x-newcomer": "yes"})),
            asyncio.ensure_future(http.get("/ranged", headers={"range": "bytes=0-1"})),
        ]
        for _ in range(20):
            await asyncio.sleep(0)
        plain = [asyncio.ensure_future(http.get("/ranged")) for _ in range(200)]
        for _ in range(20):
            await asyncio.sleep(0)
        backend.gate.set()
        responses = await asyncio.gather(*odd, *plain)
    assert backend.computes["ranged"] <= 3
    assert sum("set-cookie" in r.headers for r in responses) == 1


# -- memory ----------------------------------------------------------------------------


async def test_cache_busting_queries_stay_within_max_bytes(backend: Backend, clock: FakeClock) -> None:
    app = cached(backend, clock, max_bytes=8_000_000, max_body=1_000_000)
    backend.size = 900_000
    async with client(app) as http:
        for n in range(40):
            assert len((await http.get(f"/big?cb={n}")).content) == 900_000
    store = app._cached.cache
    assert backend.computes["big"] == 40 and store.currsize <= 8_000_000 and len(store) == 8


async def test_a_response_above_max_body_is_served_never_kept(backend: Backend, clock: FakeClock) -> None:
    app = cached(backend, clock, max_body=100_000)
    backend.size = 100_001
    async with client(app) as http:
        responses = [await http.get("/big") for _ in range(2)]
    assert [len(r.content) for r in responses] == [100_001] * 2 and backend.computes["big"] == 2
    assert all(
        r.headers["x-vix-cache"] == "bypass" and r.headers["cache-control"] == "no-store" for r in responses
    )


# -- the application's freshness -------------------------------------------------------


@pytest.mark.parametrize(
    "control", ["no-cache", "no-store", "private", "max-age=0", "s-maxage=0, max-age=60"]
)
async def test_what_the_app_forbids_is_not_kept(backend: Backend, clock: FakeClock, control: str) -> None:
    backend.headers = {"cache-control": control}
    async with client(cached(backend, clock)) as http:
        responses = [await http.get("/page") for _ in range(3)]
    assert [r.text for r in responses] == ["page 1", "page 2", "page 3"]
    for response in responses:
        assert response.headers["x-vix-cache"] == "bypass" and response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("control", "allowed"), [("max-age=1, must-revalidate", 1), ("s-maxage=5, max-age=1", 5)]
)
async def test_the_apps_max_age_is_never_exceeded_downstream(
    backend: Backend, clock: FakeClock, control: str, allowed: int
) -> None:
    backend.headers = {"cache-control": control}
    async with client(cached(backend, clock, stale_while_revalidate=30)) as http:
        first = await http.get("/page")
        clock.advance(allowed / 2)
        within = await http.get("/page")
        clock.advance(allowed)
        after = await http.get("/page")
    assert (first.text, within.text) == ("page 1", "page 1") and after.text == "page 2"
    for response in (first, within, after):
        assert max_age(response) <= allowed and max_age(response) - int(response.headers["age"]) <= allowed
        # Nobody in front may serve it stale either.
        assert response.headers["cache-control"] == f"max-age={allowed}, must-revalidate"
    assert after.headers["x-vix-cache"] == "stale"  # too old for the app: recomputed, not served stale


async def test_an_apps_max_age_without_must_revalidate_caps_freshness_not_stale_serving(
    backend: Backend, clock: FakeClock
) -> None:
    backend.headers = {"cache-control": "max-age=1"}
    async with client(cached(backend, clock, stale_while_revalidate=30)) as http:
        first = await http.get("/page")
        clock.advance(2)
        stale = await http.get("/page")
        for _ in range(20):
            await asyncio.sleep(0)  # the refresh, in the background
        refreshed = await http.get("/page")
    assert first.headers["cache-control"] == "max-age=1, stale-while-revalidate=30"
    # Served within the allowance you configured, already stale for a cache in front.
    assert stale.text == "page 1" and stale.headers["x-vix-cache"] == "revalidating"
    assert max_age(stale) - int(stale.headers["age"]) < 0
    assert refreshed.text == "page 2" and refreshed.headers["x-vix-cache"] == "hit"


# -- what the response says ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/missing", "/page"])
async def test_responses_not_kept_say_bypass(backend: Backend, clock: FakeClock, path: str) -> None:
    if path == "/page":
        backend.headers = {"cache-control": "no-store"}
    async with client(cached(backend, clock)) as http:
        responses = [await http.get(path) for _ in range(2)]
    assert {r.headers["x-vix-cache"] for r in responses} == {"bypass"}


# -- files -----------------------------------------------------------------------------


class _Sent:
    """What a server got from the application: status, headers, the body it sent."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.body = b""


async def _run(app: Callable[..., Awaitable[None]], scope: dict[str, Any]) -> _Sent:
    """Call *app* as a server offering *scope*'s extensions does (``pathsend``: it sends the file)."""
    sent = _Sent()
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent.status, sent.headers = message["status"], dict(message["headers"])
        elif message["type"] == "http.response.body":
            sent.body += message.get("body", b"")
        elif message["type"] == "http.response.pathsend":
            assert "http.response.pathsend" in scope["extensions"], "pathsend the server never offered"
            sent.body += Path(message["path"]).read_bytes()

    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize("size", [1_000, 64 * 1024, 300_000])
async def test_a_file_under_pathsend_is_served_whole(tmp_path: Path, clock: FakeClock, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "odds.bin").write_bytes(data)

    async def files(request: Request) -> Response:
        return FileResponse(tmp_path / "odds.bin")

    app = VixCacheMiddleware(Starlette(routes=[Route("/odds.bin", files)]), ttl=60, clock=clock)
    for said in ("miss", "hit"):
        sent = await _run(app, get_scope("/odds.bin", extensions={"http.response.pathsend": {}}))
        assert sent.status == 200 and sent.body == data
        assert (
            sent.headers[b"content-length"] == str(size).encode()
            and sent.headers[b"x-vix-cache"] == said.encode()
        )
