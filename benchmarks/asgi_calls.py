"""An ASGI app called in a loop, as a server would call it, without sockets."""

from __future__ import annotations

import asyncio
from typing import Any

Message = dict[str, Any]


def scope_of(path: str) -> dict[str, Any]:
    """A plain GET of *path*, as uvicorn gives it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"odds.test"), (b"accept", b"*/*")],
    }


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: Message) -> None:
    pass


def call_loop(loop: asyncio.AbstractEventLoop, app: Any, path: str) -> Any:
    """A runner (n -> None) calling *app* for *path* n times; called once first (a miss, cached)."""
    scope = scope_of(path)

    async def many(n: int) -> None:
        for _ in range(n):
            await app(dict(scope), receive, send)

    loop.run_until_complete(many(1))
    return lambda n: loop.run_until_complete(many(n))
