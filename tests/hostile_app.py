"""The application ``test_http_attacks_server.py`` runs under uvicorn: Starlette behind
``VixCacheMiddleware`` with its defaults, each route counting its computations."""

from __future__ import annotations

from collections import Counter

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vix_ttl.asgi import VixCacheMiddleware

PAGE = 1_048_576  # a page of 1 MiB: as large as max_body keeps
computes: Counter[str] = Counter()


async def echo(request: Request) -> Response:
    """What the application saw of the request: what a poisoned or collided key would leak."""
    computes["echo"] += 1
    return JSONResponse(
        {
            "n": computes["echo"],
            "url": str(request.url),
            "raw_path": request.scope["raw_path"].decode("latin-1"),
            "query": request.scope["query_string"].decode("latin-1"),
            "body": (await request.body()).decode("latin-1"),
        }
    )


async def big(request: Request) -> Response:
    computes["big"] += 1
    return Response(
        computes["big"].to_bytes(8, "big") + bytes(PAGE - 8), media_type="application/octet-stream"
    )


async def stats(request: Request) -> Response:
    return JSONResponse(dict(computes))


app = VixCacheMiddleware(
    Starlette(
        routes=[
            Route("/echo", echo),
            Route("/files/{name:path}", echo),
            Route("/big", big),
            Route("/stats", stats, methods=["POST"]),  # a POST: never cached
        ]
    ),
    ttl=60,
)
