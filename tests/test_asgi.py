"""VixCacheMiddleware: vix_ttl's decisions for whole responses, and the headers that carry them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.harness import rewrite_entry
from vix_ttl import Mode, TTLPolicy, VIXCircuitBreaker
from vix_ttl.asgi import VixCacheMiddleware
from vix_ttl.testing import FakeClock


class Service:
    """A Starlette app whose every route counts its computations; a test sets statuses and faults."""

    def __init__(self) -> None:
        self.computes: dict[str, int] = {}
        self.status = "normal"  # what status(scope) says
        self.failing = False
        self.varying = True  # /lang answers with Vary: Accept-Language
        routes = [
            Route("/odds/{match}", self.odds),
            Route("/cookie", self.cookie),
            Route("/private", self.private),
            Route("/vary-star", self.vary_star),
            Route("/lang", self.lang),
            Route("/stream", self.stream),
            Route("/stated/{status}", self.stated),
            Route("/echo", self.echo),
            Route("/layout/{case}", self.layout),
            Route("/empty", self.empty),
            Route("/failing-session", self.failing_session),
            Route("/waiting-stream", self.waiting_stream),
        ]
        self.release = asyncio.Event()
        self.app = Starlette(routes=routes)

    def count(self, name: str) -> int:
        self.computes[name] = self.computes.get(name, 0) + 1
        return self.computes[name]

    async def odds(self, request: Request) -> Response:
        n = self.count("odds")
        if self.failing:
            return PlainTextResponse("backend down", status_code=503)
        return JSONResponse({"match": request.path_params["match"], "n": n, "q": str(request.query_params)})

    async def cookie(self, request: Request) -> Response:
        response = PlainTextResponse(f"session {self.count('cookie')}")
        response.set_cookie("session", f"secret-{self.computes['cookie']}")
        return response

    async def private(self, request: Request) -> Response:
        return PlainTextResponse(f"yours {self.count('private')}", headers={"cache-control": "private"})

    async def vary_star(self, request: Request) -> Response:
        return PlainTextResponse(f"any {self.count('vary-star')}", headers={"vary": "*"})

    async def lang(self, request: Request) -> Response:
        self.count("lang")
        text = {"fr": "bonjour", "de": "hallo"}.get(request.headers.get("accept-language", ""), "hello")
        return PlainTextResponse(text, headers={"vary": "Accept-Language"} if self.varying else {})

    async def stream(self, request: Request) -> Response:
        self.count("stream")

        async def chunks() -> AsyncIterator[bytes]:
            for n in range(3):
                yield f"chunk {n};".encode()

        return StreamingResponse(chunks())

    async def echo(self, request: Request) -> Response:
        n = self.count("echo")
        body = (await request.body()).decode()
        return JSONResponse(
            {
                "n": n,
                "host": request.headers.get("host"),
                "query": request.query_params.getlist("a"),
                "body": body,
            }
        )

    async def layout(self, request: Request) -> Response:
        n = self.count("layout")
        headers = {
            "two-cache-controls": [(b"cache-control", b"public"), (b"cache-control", b"no-store")],
            "vary-list-star": [(b"vary", b"Accept, *")],
        }[request.path_params["case"]]
        response = PlainTextResponse(f"yours {n}")
        response.raw_headers.extend(headers)
        return response

    async def empty(self, request: Request) -> Response:
        self.count("empty")
        return Response(status_code=204)

    async def failing_session(self, request: Request) -> Response:
        await asyncio.sleep(0.01)  # long enough for the others to join
        user = request.headers["x-user"]  # not in the key: every request joins one computation
        response = PlainTextResponse(f"down for {user}", status_code=503)
        response.set_cookie("session", f"session-of-{user}")
        return response

    async def waiting_stream(self, request: Request) -> Response:
        self.count("waiting-stream")

        async def chunks() -> AsyncIterator[bytes]:
            yield b"first;"
            await self.release.wait()
            yield b"last;"

        return StreamingResponse(chunks())

    async def stated(self, request: Request) -> Response:
        self.count("stated")
        return PlainTextResponse(
            f"n={self.computes['stated']}", headers={"x-vix-status": request.path_params["status"]}
        )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def service() -> Service:
    return Service()


def middleware(service: Service, clock: FakeClock, **options: Any) -> VixCacheMiddleware:
    breaker = VIXCircuitBreaker(clock=clock, min_samples=10**9)  # stays NORMAL unless a test forces it
    options.setdefault("status", lambda scope: service.status)
    return VixCacheMiddleware(service.app, ttl=60, breaker=breaker, **options)


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://odds.test")


def fresh_left(response: httpx.Response) -> int:
    """What a cache in front computes: max-age - Age."""
    directives = dict(
        part.strip().partition("=")[::2] for part in response.headers["cache-control"].split(",")
    )
    return int(directives["max-age"]) - int(response.headers["age"])


async def test_a_get_is_computed_once_then_served_with_its_freshness(
    service: Service, clock: FakeClock
) -> None:
    async with client(middleware(service, clock)) as http:
        first = await http.get("/odds/1")
        assert first.headers["x-vix-cache"] == "miss"
        assert first.headers["cache-control"] == "max-age=60" and first.headers["age"] == "0"
        clock.advance(25.5)
        second = await http.get("/odds/1")
        assert second.headers["x-vix-cache"] == "hit"
        assert second.json() == first.json() and service.computes["odds"] == 1
        # Age rounded up: a cache in front never thinks it fresher than it is (34.5 s left).
        assert second.headers["age"] == "26" and fresh_left(second) == 34
        clock.advance(35)
        third = await http.get("/odds/1")
        assert third.headers["x-vix-cache"] == "stale" and third.json()["n"] == 2


async def test_max_age_follows_the_breaker_decision_for_the_entry_now(
    service: Service, clock: FakeClock
) -> None:
    breaker = VIXCircuitBreaker(clock=clock, min_samples=0)
    app = VixCacheMiddleware(service.app, ttl=60, breaker=breaker, status=lambda scope: service.status)
    async with client(app) as http:
        await http.get("/odds/1")
        clock.advance(4)
        for _ in range(10):
            breaker.record("panic")  # the feed panics: the breaker trips
        assert breaker.mode is Mode.CIRCUIT_OPEN
        service.status = "panic"
        hit = await http.get("/odds/1")
    # Stored for 60 s in calm; a panic request in CIRCUIT_OPEN decides 10 s: the entry's fresh TTL.
    assert hit.headers["x-vix-cache"] == "hit"
    assert hit.headers["cache-control"] == "max-age=10" and fresh_left(hit) == 6


async def test_panic_in_calm_bypasses_and_says_no_store(service: Service, clock: FakeClock) -> None:
    async with client(middleware(service, clock)) as http:
        await http.get("/odds/1")
        service.status = "panic"
        for _ in range(2):
            response = await http.get("/odds/1")
            assert response.headers["x-vix-cache"] == "bypass"
            assert response.headers["cache-control"] == "no-store" and "age" not in response.headers
        assert service.computes["odds"] == 3


async def test_after_a_short_panic_the_page_from_before_it_never_comes_back(
    service: Service, clock: FakeClock
) -> None:
    async with client(middleware(service, clock)) as http:
        assert (await http.get("/odds/1")).json()["n"] == 1  # t=0, calm: kept for 60 s
        service.status = "panic"
        for _ in range(2):
            clock.advance(5)
            bypassed = await http.get("/odds/1")  # t=5, t=10: bypassed, and kept in its place
            assert bypassed.headers["x-vix-cache"] == "bypass"
            assert bypassed.headers["cache-control"] == "no-store"
        service.status = "normal"
        clock.advance(5)
        after = await http.get("/odds/1")  # t=15, calm again
    # What clients were last shown (0.2 served the page from before the panic, n=1).
    assert after.json()["n"] == 3 and after.headers["x-vix-cache"] == "hit"
    assert after.headers["age"] == "5" and fresh_left(after) == 55


async def test_a_page_served_that_cannot_be_kept_still_keeps_the_old_one_away(clock: FakeClock) -> None:
    page = {"body": b"old", "headers": [(b"content-type", b"text/plain")]}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": page["headers"]})
        await send({"type": "http.response.body", "body": page["body"]})

    status = {"now": "normal"}
    breaker = VIXCircuitBreaker(clock=clock, min_samples=10**9)
    cached = VixCacheMiddleware(app, ttl=60, breaker=breaker, status=lambda scope: status["now"])
    async with client(cached) as http:
        assert (await http.get("/x")).text == "old"
        status["now"] = "panic"
        page.update(body=b"new", headers=[(b"cache-control", b"no-store")])  # the app's own no-store
        bypassed = await http.get("/x")
        assert bypassed.text == "new" and bypassed.headers["x-vix-cache"] == "bypass"
        status["now"], page["headers"] = "normal", []
        assert (await http.get("/x")).text == "new"  # never the page from before it


async def test_the_query_is_part_of_the_key_in_any_order(service: Service, clock: FakeClock) -> None:
    async with client(middleware(service, clock)) as http:
        a = await http.get("/odds/1?b=2&a=1")
        b = await http.get("/odds/1?a=1&b=2")
        c = await http.get("/odds/1?a=1&b=3")
    assert b.headers["x-vix-cache"] == "hit" and b.json() == a.json()
    assert c.headers["x-vix-cache"] == "miss" and service.computes["odds"] == 2


async def test_etag_is_the_body_hash_and_if_none_match_gets_304(service: Service, clock: FakeClock) -> None:
    async with client(middleware(service, clock)) as http:
        first = await http.get("/odds/1")
        etag = first.headers["etag"]
        assert etag == '"' + hashlib.sha256(first.content).hexdigest()[:32] + '"'
        other = await http.get("/odds/2")
        assert other.headers["etag"] != etag
        not_modified = await http.get("/odds/1", headers={"if-none-match": f'W/"x", {etag}'})
        assert not_modified.status_code == 304 and not_modified.content == b""
        assert not_modified.headers["etag"] == etag and not_modified.headers["x-vix-cache"] == "hit"
        changed = await http.get("/odds/1", headers={"if-none-match": '"other"'})
        assert changed.status_code == 200 and changed.content == first.content


async def test_head_is_answered_from_the_get_entry(service: Service, clock: FakeClock) -> None:
    async with client(middleware(service, clock)) as http:
        get = await http.get("/odds/1")
        head = await http.head("/odds/1")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == get.headers["etag"] and head.headers["x-vix-cache"] == "hit"
    assert head.headers["content-length"] == str(len(get.content))
    assert service.computes["odds"] == 1


async def test_request_no_cache_is_served_from_the_cache_and_no_store_bypasses(
    service: Service, clock: FakeClock
) -> None:
    # A client's no-cache cannot send every request to the backend (0.2 recomputed each one):
    # served from the cache, as CDNs do, with its freshness headers.
    async with client(middleware(service, clock)) as http:
        first = await http.get("/odds/1")
        for directive in ("no-cache", "max-age=0"):
            again = await http.get("/odds/1", headers={"cache-control": directive})
            assert again.headers["x-vix-cache"] == "hit" and again.json()["n"] == 1
            assert (
                again.headers["cache-control"] == "max-age=60"
                and again.headers["etag"] == first.headers["etag"]
            )
        passed = await http.get("/odds/1", headers={"cache-control": "no-store"})
        assert passed.headers["x-vix-cache"] == "bypass" and passed.json()["n"] == 2
        assert passed.headers["cache-control"] == "no-store"
        assert (await http.get("/odds/1")).json()["n"] == 1  # nothing written


async def test_client_revalidation_recomputes_for_no_cache_and_coalesces_those_requests(
    service: Service, clock: FakeClock
) -> None:
    async with client(middleware(service, clock, client_revalidation=True)) as http:
        assert (await http.get("/odds/1")).json()["n"] == 1
        fresh = await asyncio.gather(
            *(http.get("/odds/1", headers={"cache-control": "no-cache"}) for _ in range(20))
        )
        assert {r.json()["n"] for r in fresh} == {2}  # one computation for all of them
        assert (await http.get("/odds/1")).json()["n"] == 2  # and it replaced the entry


@pytest.mark.parametrize("path", ["/cookie", "/private", "/vary-star"])
async def test_responses_that_are_someone_elses_are_never_stored(
    path: str, service: Service, clock: FakeClock
) -> None:
    async with client(middleware(service, clock)) as http:
        bodies = [(await http.get(path)).text for _ in range(3)]
    assert len(set(bodies)) == 3  # computed every time
    assert service.computes[path.strip("/")] == 3


async def test_a_cookie_is_never_shared_with_concurrent_callers(service: Service, clock: FakeClock) -> None:
    async with client(middleware(service, clock)) as http:
        responses = await asyncio.gather(*(http.get("/cookie") for _ in range(20)))
    cookies = [r.headers["set-cookie"] for r in responses]
    assert len(set(cookies)) == 20  # each client its own session, none another's


async def test_vary_keys_by_the_request_headers_it_names(service: Service, clock: FakeClock) -> None:
    async with client(middleware(service, clock)) as http:
        first = await http.get("/lang", headers={"accept-language": "fr"})  # learns the Vary: not kept
        assert first.text == "bonjour"
        assert (await http.get("/lang", headers={"accept-language": "fr"})).headers["x-vix-cache"] == "miss"
        fr = await http.get("/lang", headers={"accept-language": "fr"})
        de = await http.get("/lang", headers={"accept-language": "de"})
    assert (fr.text, fr.headers["x-vix-cache"]) == ("bonjour", "hit")
    assert (de.text, de.headers["x-vix-cache"]) == ("hallo", "miss")


async def test_streaming_responses_pass_through(service: Service, clock: FakeClock) -> None:
    async with client(middleware(service, clock)) as http:
        for _ in range(2):
            response = await http.get("/stream")
            assert response.text == "chunk 0;chunk 1;chunk 2;"
            assert response.headers["x-vix-cache"] == "bypass"  # nothing kept
    assert service.computes["stream"] == 2


async def test_a_5xx_is_a_failed_computation_served_stale_within_stale_if_error(
    service: Service, clock: FakeClock
) -> None:
    async with client(middleware(service, clock, stale_if_error=30)) as http:
        good = await http.get("/odds/1")
        service.failing = True
        clock.advance(70)  # past its 60 s, within 60 + 30
        fallback = await http.get("/odds/1")
        assert fallback.status_code == 200 and fallback.json() == good.json()
        assert fallback.headers["x-vix-cache"] == "fallback"
        assert "stale-if-error=30" in fallback.headers["cache-control"]
        clock.advance(25)  # 95 s: past the allowance
        failed = await http.get("/odds/1")
        assert failed.status_code == 503 and failed.headers["cache-control"] == "no-store"
        service.failing = False
        recovered = await http.get("/odds/1")  # the 503 was not stored: the old entry is what is there
        assert recovered.headers["x-vix-cache"] == "stale" and recovered.status_code == 200


async def test_stale_while_revalidate_serves_at_once_and_refreshes_behind(
    service: Service, clock: FakeClock
) -> None:
    async with client(middleware(service, clock, stale_while_revalidate=10)) as http:
        await http.get("/odds/1")
        clock.advance(65)
        served = await http.get("/odds/1")
        assert served.headers["x-vix-cache"] == "revalidating" and served.json()["n"] == 1
        assert "stale-while-revalidate=10" in served.headers["cache-control"]
        assert fresh_left(served) < 0  # a cache in front sees it stale too
        for _ in range(20):
            await asyncio.sleep(0)  # let the background refresh land
        refreshed = await http.get("/odds/1")
    assert refreshed.headers["x-vix-cache"] == "hit" and refreshed.json()["n"] == 2


async def test_concurrent_misses_share_one_computation(service: Service, clock: FakeClock) -> None:
    async with client(middleware(service, clock)) as http:
        responses = await asyncio.gather(*(http.get("/odds/9") for _ in range(30)))
    assert service.computes["odds"] == 1
    assert {r.json()["n"] for r in responses} == {1}


async def test_without_status_the_app_states_it_and_later_requests_are_judged_by_it(
    service: Service, clock: FakeClock
) -> None:
    app = middleware(service, clock, status=None)
    async with client(app) as http:
        calm = await http.get("/stated/normal")
        assert "x-vix-status" not in calm.headers  # stripped before it leaves
        assert calm.headers["cache-control"] == "max-age=60"
        assert (await http.get("/stated/normal")).headers["x-vix-cache"] == "hit"
        panic = await http.get("/stated/panic")  # NORMAL mode: a panic response is not kept
        assert panic.headers["cache-control"] == "no-store" and panic.headers["x-vix-cache"] == "bypass"
        again = await http.get("/stated/panic")
        assert again.headers["x-vix-cache"] == "bypass" and again.headers["cache-control"] == "no-store"
    assert app.breaker.metrics()["panic_samples"] == 2  # recorded when computed, not per request
    assert app.breaker.metrics()["samples"] == 3


async def test_other_methods_and_protocols_pass_through(service: Service, clock: FakeClock) -> None:
    async with client(middleware(service, clock)) as http:
        posted = await http.post("/odds/1")
    assert posted.status_code == 405 and posted.headers["x-vix-cache"] == "bypass"


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(TypeError, match="app must be an ASGI application"):
        VixCacheMiddleware(None, ttl=60)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="status must be a callable of the scope"):
        VixCacheMiddleware(Service().app, ttl=60, status="panic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl"):
        VixCacheMiddleware(Service().app, ttl=-1)


def test_cache_info_counts_requests(service: Service, clock: FakeClock) -> None:
    app = middleware(service, clock)

    async def run() -> None:
        async with client(app) as http:
            await http.get("/odds/1")
            await http.get("/odds/1")

    asyncio.run(run())
    info = app.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    assert json.loads(json.dumps(info._asdict()))["hits"] == 1


async def test_on_redis_a_tampered_response_is_never_served(
    service: Service, clock: FakeClock, redis_port: int
) -> None:
    import redis.asyncio as redis
    from aiocache import RedisCache
    from aiocache.serializers import JsonSerializer

    namespace = f"asgi-test-{clock()}-{id(service)}"
    cache = RedisCache(
        endpoint="127.0.0.1", port=redis_port, namespace=namespace, serializer=JsonSerializer()
    )
    app = middleware(service, clock, cache=cache, namespace="odds", secret="a secret of sixteen bytes+")
    raw = redis.Redis(port=redis_port)
    try:
        async with client(app) as http:
            genuine = await http.get("/odds/1")
            assert (await http.get("/odds/1")).headers["x-vix-cache"] == "hit"
            (key,) = [k async for k in raw.scan_iter(f"{namespace}*")]
            stored = await raw.get(key)
            assert isinstance(stored, bytes)

            def rewrite_the_odds(value: dict[str, Any]) -> None:
                body = base64.b64decode(value["body64"])  # bodies are kept as base64 in shared stores
                assert body == genuine.content
                value["body64"] = base64.b64encode(body.replace(b'"n":1', b'"n":666')).decode()

            await raw.set(key, rewrite_entry(stored, rewrite_the_odds))  # its signature kept
            served = await http.get("/odds/1")
        assert b"666" not in served.content
        assert served.headers["x-vix-cache"] == "miss" and served.json()["n"] == 2  # rejected: recomputed
        assert app.cache_info().rejected == 1 and genuine.json()["n"] == 1
    finally:
        await raw.delete(*[k async for k in raw.scan_iter(f"{namespace}*")])
        await raw.aclose()
        await cache.close()


async def test_credentials_bypass_the_cache(service: Service, clock: FakeClock) -> None:
    async with client(middleware(service, clock)) as http:
        alice = await http.get("/echo", headers={"authorization": "Bearer alice"})
        anonymous = await http.get("/echo")
        bob = await http.get("/echo", headers={"cookie": "token=bob"})
        again = await http.get("/echo")
    assert alice.headers["x-vix-cache"] == bob.headers["x-vix-cache"] == "bypass"
    assert alice.headers["cache-control"] == "no-store"
    assert anonymous.headers["x-vix-cache"] == "miss" and again.headers["x-vix-cache"] == "hit"
    assert service.computes["echo"] == 3  # alice, the anonymous miss, bob


async def test_a_failed_response_with_a_session_is_never_handed_to_another_client(
    service: Service, clock: FakeClock
) -> None:
    async with client(middleware(service, clock)) as http:
        alice, bob = await asyncio.gather(
            http.get("/failing-session", headers={"x-user": "alice"}),
            http.get("/failing-session", headers={"x-user": "bob"}),
        )
    assert alice.headers["set-cookie"].startswith("session=session-of-alice")
    assert bob.headers["set-cookie"].startswith("session=session-of-bob")
    assert alice.status_code == bob.status_code == 503


@pytest.mark.parametrize("case", ["two-cache-controls", "vary-list-star"])
async def test_never_stored_whatever_the_header_layout(case: str, service: Service, clock: FakeClock) -> None:
    async with client(middleware(service, clock)) as http:
        first = await http.get(f"/layout/{case}")
        second = await http.get(f"/layout/{case}")
    assert (first.text, second.text) == ("yours 1", "yours 2")
    assert second.headers["x-vix-cache"] == "bypass"  # nothing kept


async def test_the_key_keeps_the_host_and_the_order_of_repeated_parameters(
    service: Service, clock: FakeClock
) -> None:
    async with client(middleware(service, clock)) as http:
        ab = await http.get("/echo?a=1&a=2")
        ba = await http.get("/echo?a=2&a=1")
        other_host = await http.get("/echo?a=1&a=2", headers={"host": "tenant-b.example"})
        ab_again = await http.get("/echo?a=1&a=2")
    assert (ab.json()["query"], ba.json()["query"]) == (["1", "2"], ["2", "1"])
    assert other_host.json()["host"] == "tenant-b.example" and other_host.headers["x-vix-cache"] == "miss"
    assert ab_again.headers["x-vix-cache"] == "hit"


async def test_a_get_body_reaches_the_app(service: Service, clock: FakeClock) -> None:
    async with client(middleware(service, clock)) as http:
        response = await http.request("GET", "/echo", content=b"football")
    assert response.json()["body"] == "football"


async def test_a_path_that_stops_varying_is_still_cached(service: Service, clock: FakeClock) -> None:
    async with client(middleware(service, clock)) as http:
        await http.get("/lang", headers={"accept-language": "fr"})  # learns Vary: Accept-Language
        service.varying = False
        # Kept per language still (a key holding more headers than needed is only finer).
        said = [
            (await http.get("/lang", headers=h)).headers["x-vix-cache"]
            for h in ({}, {}, {"accept-language": "fr"})
        ]
    assert said == ["miss", "hit", "miss"]


@pytest.mark.parametrize("revalidation", [False, True])
async def test_no_cache_never_wipes_the_fallback(
    service: Service, clock: FakeClock, revalidation: bool
) -> None:
    async with client(
        middleware(service, clock, stale_if_error=30, client_revalidation=revalidation)
    ) as http:
        await http.get("/odds/1")
        service.failing = True
        clock.advance(70)
        forced = await http.get("/odds/1", headers={"cache-control": "no-cache"})
        # Served from the cache by default (the fallback); a revalidating client gets the app's answer.
        assert forced.status_code == (503 if revalidation else 200)
        after = await http.get("/odds/1")
    assert after.status_code == 200 and after.headers["x-vix-cache"] == "fallback"


async def test_a_malformed_shared_entry_is_recomputed_not_a_crash(service: Service, clock: FakeClock) -> None:
    store: dict[Any, Any] = {}
    app = middleware(service, clock, cache=store, namespace="odds-test")
    async with client(app) as http:
        await http.get("/odds/1")
        (key,) = store
        entry = store[key]
        store[key] = entry._replace(value={"status": 200})  # someone else's shape
        response = await http.get("/odds/1")
        assert response.status_code == 200 and response.json()["n"] == 2
        assert (await http.get("/odds/1")).headers["x-vix-cache"] in ("miss", "hit")


async def test_no_content_keeps_no_length(service: Service, clock: FakeClock) -> None:
    async with client(middleware(service, clock)) as http:
        response = await http.get("/empty")
    assert response.status_code == 204 and "content-length" not in response.headers


async def test_a_stream_keeps_nobody_else_waiting(service: Service, clock: FakeClock) -> None:
    app = middleware(service, clock)
    firsts: list[bytes] = []

    async def one_client() -> None:
        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                firsts.append(message["body"])

        requests = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, Any]:  # as a server: the request, then nothing until it ends
            if requests:
                return requests.pop()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/waiting-stream",
            "headers": [],
            "query_string": b"",
        }
        await app(scope, receive, send)  # type: ignore[arg-type]

    clients = [asyncio.create_task(one_client()) for _ in range(3)]
    for _ in range(50):
        await asyncio.sleep(0)
    assert firsts.count(b"first;") == 3  # every client has its stream going before any ends
    service.release.set()
    await asyncio.gather(*clients)
    assert firsts.count(b"last;") == 3 and service.computes["waiting-stream"] == 3


def test_a_shared_cache_needs_a_namespace(service: Service) -> None:
    with pytest.raises(TypeError, match="namespace="):
        VixCacheMiddleware(service.app, ttl=60, cache={})


def test_the_middleware_takes_vix_cacheds_options_and_names_itself_in_their_errors() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    middleware = VixCacheMiddleware(app, ttl=60, warning_ttl=30, early_refresh=1.0, coalesce=False)
    assert middleware.breaker.name == "vix_ttl.asgi"
    with pytest.raises(
        TypeError, match=r"^VixCacheMiddleware: unknown option stale \(allowed: app, ttl, cache"
    ):
        VixCacheMiddleware(app, ttl=60, stale=5)  # type: ignore[call-arg]
    # vix_cached's own key= and maxsize= are not the middleware's: its keys are HTTP's
    for own in ({"key": lambda *a: "same"}, {"maxsize": 10}):
        with pytest.raises(TypeError, match=f"unknown option {next(iter(own))} .*max_body"):
            VixCacheMiddleware(app, ttl=60, **own)
    with pytest.raises(ValueError, match=r"^VixCacheMiddleware: .*early_refresh"):
        VixCacheMiddleware(app, ttl=60, early_refresh=-1)


@pytest.mark.parametrize("moving", [False, True])
async def test_a_learned_ttl_is_the_one_max_age_states_and_a_page_learns_from_its_body(
    moving: bool, clock: FakeClock
) -> None:
    async def score(request: Request) -> Response:
        return PlainTextResponse(f"score {clock() // 10 if moving else 0}")  # moves every 10 s, or never

    breaker = VIXCircuitBreaker(policy=TTLPolicy.learned(), clock=clock, min_samples=10**9)
    app = VixCacheMiddleware(
        Starlette(routes=[Route("/score", score)]), ttl=60, breaker=breaker, status=lambda scope: "normal"
    )
    computes = 0
    async with client(app) as http:
        for _ in range(1200):  # a request a second for 20 minutes
            clock.advance(1)
            response = await http.get("/score")
            computes += response.headers["x-vix-cache"] != "hit"
            max_age = int(response.headers["cache-control"].removeprefix("max-age="))
    if moving:  # ten calls a change: about 8 s by the square-root rule, and a cache in front is told so
        assert computes > 100 and 4 <= max_age <= 12
    else:  # the same body whenever it is stored: no change learned, your TTL
        assert computes == 20 and max_age == 60 and breaker.learned_intervals["normal"] == math.inf


async def test_max_age_restates_warning_ttl_in_either_mode(service: Service, clock: FakeClock) -> None:
    async with client(middleware(service, clock, warning_ttl=5)) as http:
        assert (await http.get("/odds/1")).headers["cache-control"] == "max-age=60"
        clock.advance(2)
        service.status = "warning"  # the calm page is judged by warning's TTL now: 3 s left, not 58
        hit = await http.get("/odds/1")
        assert hit.headers["x-vix-cache"] == "hit" and fresh_left(hit) == 3
    async with client(middleware(service, clock, warning_ttl=5, status=None)) as http:
        stated = await http.get("/stated/warning")  # the app says warning: kept 5 s, and says so
        assert stated.headers["cache-control"] == "max-age=5"
        clock.advance(2)
        assert fresh_left(await http.get("/stated/warning")) == 3
    with pytest.raises(TypeError, match="VixCacheMiddleware warning_ttl must be a number"):
        middleware(service, clock, warning_ttl=lambda: 5)


async def test_a_huge_ttl_is_stated_as_a_year_like_one_that_never_expires(
    service: Service, clock: FakeClock
) -> None:
    for ttl in (1e308, None):
        app = VixCacheMiddleware(service.app, ttl=ttl, stale_if_error=1e308, status=lambda scope: "normal")
        async with client(app) as http:
            said = (await http.get("/odds/1")).headers["cache-control"]
        assert said == "max-age=31536000, stale-if-error=31536000"
