"""One FastAPI endpoint behind each HTTP cache compared in ``http_load.py peers``.

``GET /odds/{match}`` answers JSON after a backend call of ``BACKEND_SECONDS``; the
configuration (``VIX_PEER``, see ``PEERS``) decides what caches it, each with its own
documented set-up and a 60 s TTL:

- ``none``: no cache;
- ``middleware``: ``VixCacheMiddleware`` around the app;
- ``decorator``: ``@vix_cached`` on the backend call, inside the endpoint;
- ``cashews``: cashews' ``@cache`` on the endpoint (in memory);
- ``cashews-middleware``: the same, with cashews' FastAPI middlewares (ETags, the
  request's ``Cache-Control``), as its documentation sets them up;
- ``fastapi-cache2``: fastapi-cache2's ``@cache`` with its in-memory backend.

Run under uvicorn (``VIX_PEER=middleware uvicorn benchmarks.http_peers:app``), or built in
process with ``build(peer, backend_seconds)``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from vix_ttl import VIXCircuitBreaker, vix_cached
from vix_ttl.asgi import VixCacheMiddleware

PEERS = ("none", "middleware", "decorator", "cashews", "cashews-middleware", "fastapi-cache2")
TTL = 60


def build(peer: str, backend_seconds: float) -> Any:
    """The ASGI app of *peer*, its backend taking *backend_seconds* (0: none at all)."""
    if peer not in PEERS:
        raise ValueError(f"VIX_PEER must be one of {', '.join(PEERS)}, got {peer!r}")

    async def backend(match: str) -> dict[str, Any]:
        if backend_seconds:
            await asyncio.sleep(backend_seconds)
        return {"match": match, "odds": 2.10, "book": "bet365"}

    if peer in {"cashews", "cashews-middleware"}:
        return _cashews(backend, middleware=peer == "cashews-middleware")
    if peer == "fastapi-cache2":
        return _fastapi_cache2(backend)
    app = FastAPI()
    if peer == "decorator":
        cached = vix_cached(TTL, status=lambda match: "normal", breaker=VIXCircuitBreaker())(backend)

        @app.get("/odds/{match}")
        async def odds_cached(match: str) -> dict[str, Any]:
            value: dict[str, Any] = await cached(match)
            return value

        return app

    @app.get("/odds/{match}")
    async def odds(match: str) -> dict[str, Any]:
        return await backend(match)

    if peer == "middleware":
        return VixCacheMiddleware(app, ttl=TTL, breaker=VIXCircuitBreaker())
    return app


def _cashews(backend: Callable[[str], Any], *, middleware: bool) -> FastAPI:
    from cashews import cache  # its documented set-up: the module's cache, in memory
    from cashews.contrib.fastapi import CacheEtagMiddleware, CacheRequestControlMiddleware

    cache.setup("mem://")
    app = FastAPI()
    if middleware:
        app.add_middleware(CacheEtagMiddleware)
        app.add_middleware(CacheRequestControlMiddleware)

    @app.get("/odds/{match}")
    @cache(ttl=f"{TTL}s")
    async def odds(match: str) -> dict[str, Any]:
        value: dict[str, Any] = await backend(match)
        return value

    return app


def _fastapi_cache2(backend: Callable[[str], Any]) -> FastAPI:
    from fastapi_cache import FastAPICache
    from fastapi_cache.backends.inmemory import InMemoryBackend
    from fastapi_cache.decorator import cache

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        FastAPICache.init(InMemoryBackend(), prefix="odds")
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/odds/{match}")
    @cache(expire=TTL)
    async def odds(match: str) -> dict[str, Any]:
        value: dict[str, Any] = await backend(match)
        return value

    return app


app = build(os.environ.get("VIX_PEER", "none"), float(os.environ.get("BACKEND_SECONDS", "0.05")))
