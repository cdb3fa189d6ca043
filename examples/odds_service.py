"""An odds service behind ``VixCacheMiddleware``: the HTTP guide's example, and the load test's target.

A simulated feed moves each match's odds ten times a second: a calm random walk,
then a panic phase of violent jumps, in a cycle (``VIX_EXAMPLE_CALM`` /
``VIX_EXAMPLE_PANIC`` seconds, default 20 / 10). A ``VolatilityDetector`` scores
every tick, so each match always has a status. ``GET /odds/{match}`` prices a
match from a backend that takes ``VIX_EXAMPLE_LATENCY_MS`` (default 50 ms) and
counts its computations; ``GET /matches`` lists them; ``GET /stats`` tells the
counts, statuses and the breaker's mode.

``VIX_EXAMPLE_CACHE`` picks what sits in front of the backend: ``middleware``
(the default: ``VixCacheMiddleware`` over the whole app), ``decorator``
(``@vix_cached`` on the pricing function) or ``none``. With ``REDIS_URL`` set
(``redis://127.0.0.1:6390``), entries live in Redis, signed with
``VIX_EXAMPLE_SECRET``; else in process memory.

Run it: ``make serve``, or ``uvicorn examples.odds_service:app --port 8000``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from vix_ttl import VIXCircuitBreaker, VolatilityDetector, vix_cached
from vix_ttl.asgi import VixCacheMiddleware

MATCHES = [f"match-{n}" for n in range(1, 21)]
CALM = float(os.environ.get("VIX_EXAMPLE_CALM", "20"))
PANIC = float(os.environ.get("VIX_EXAMPLE_PANIC", "10"))
LATENCY = float(os.environ.get("VIX_EXAMPLE_LATENCY_MS", "50")) / 1000
CACHE = os.environ.get("VIX_EXAMPLE_CACHE", "middleware")
TTL = 60.0

# Ten ticks a second: a 3-sigma jump is panic, 1 in 370 calm ticks; a jump holds its match
# in panic for a second, as the feed flickers from tick to tick even in a panic phase.
detector = VolatilityDetector(warning_sigma=2.0, panic_sigma=3.0, min_history=30, halflife=1000)
HOLD = 1.0
# The example compresses the production story (a 45-minute panic) into seconds, and its
# breaker's window with it: 10 s, so a 30-second load test sees the breaker trip.
breaker = VIXCircuitBreaker(name="odds-example", window_seconds=10, bucket_seconds=1)
odds: dict[str, float] = dict.fromkeys(MATCHES, 2.0)
held: dict[str, float] = {}  # match -> when its last panic tick stops holding it in panic
computes = {"total": 0, "in_panic": 0}
requests = {"total": 0, "in_panic": 0}


def status_of(match: str) -> str:
    if held.get(match, -math.inf) > asyncio.get_running_loop().time():
        return "panic"
    return detector.status(match).value


async def price(match: str) -> dict[str, Any]:
    """The backend: one pricing, ``LATENCY`` long, counted."""
    computes["total"] += 1
    if status_of(match) == "panic":
        computes["in_panic"] += 1
    await asyncio.sleep(LATENCY)
    return {"match": match, "odds": round(odds.get(match, 2.0), 4), "status": status_of(match)}


def _store() -> Any:
    url = os.environ.get("REDIS_URL")
    if not url:
        return None
    from aiocache import RedisCache  # noqa: PLC0415 - the aiocache extra, only with Redis
    from aiocache.serializers import JsonSerializer  # noqa: PLC0415

    parsed = urlparse(url)
    return RedisCache(
        endpoint=parsed.hostname or "127.0.0.1",
        port=parsed.port or 6379,
        namespace=os.environ.get("VIX_EXAMPLE_NAMESPACE", "odds-example"),
        serializer=JsonSerializer(),
    )


_SECRET = os.environ.get("VIX_EXAMPLE_SECRET", "odds-example-secret-change-me")

if CACHE == "decorator":
    price = vix_cached(
        TTL,
        status=status_of,
        breaker=breaker,
        cache=_store(),
        secret=_SECRET if os.environ.get("REDIS_URL") else None,
    )(price)


async def odds_endpoint(request: Request) -> JSONResponse:
    match = request.path_params["match"]
    if match not in odds:
        return JSONResponse({"error": f"unknown match {match!r}"}, status_code=404)
    return JSONResponse(await price(match))


async def matches(request: Request) -> JSONResponse:
    return JSONResponse({"matches": MATCHES})


async def stats(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "computes": computes,
            "requests": requests,
            "statuses": {m: status_of(m) for m in MATCHES},
            "mode": breaker.mode.value,
            "cache": CACHE,
        },
        headers={"cache-control": "no-store"},
    )


async def feed() -> None:
    """Ten ticks a second per match: a calm walk, then violent jumps, in a cycle."""
    rng = random.Random(7)
    started = asyncio.get_running_loop().time()
    while True:
        phase = (asyncio.get_running_loop().time() - started) % (CALM + PANIC)
        panic = phase >= CALM
        for match in MATCHES:
            step = rng.gauss(0, 0.05 if panic else 0.002)
            odds[match] = max(1.01, odds[match] * math.exp(step))
            if detector.update(match, odds[match]) == "panic":
                held[match] = asyncio.get_running_loop().time() + HOLD
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    task = asyncio.create_task(feed())
    yield
    task.cancel()


def _match_status(scope: Any) -> str:
    """The status of the match a request asks for (normal for anything else)."""
    parts = scope["path"].strip("/").split("/")
    return status_of(parts[1]) if len(parts) == 2 and parts[0] == "odds" and parts[1] in odds else "normal"


class Counted:
    """Counts the odds requests, and those for a match in panic: what computes are compared with."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/odds/"):
            requests["total"] += 1
            requests["in_panic"] += _match_status(scope) == "panic"
        await self.app(scope, receive, send)


routes = [Route("/odds/{match}", odds_endpoint), Route("/matches", matches), Route("/stats", stats)]
service = Starlette(routes=routes, lifespan=lifespan)
cached: Any = service
if CACHE == "middleware":
    cached = VixCacheMiddleware(
        service,
        ttl=TTL,
        status=_match_status,
        breaker=breaker,
        cache=_store(),
        namespace="odds-example",
        stale_while_revalidate={"circuit_open": 5},
        stale_if_error=30,
        secret=_SECRET if os.environ.get("REDIS_URL") else None,
    )
app = Counted(cached)
