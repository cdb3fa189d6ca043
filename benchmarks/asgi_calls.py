"""An ASGI app called in a loop, as a server would call it, without sockets."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.harness import get_scope

Message = dict[str, Any]


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: Message) -> None:
    pass


def call_loop(loop: asyncio.AbstractEventLoop, app: Any, path: str) -> Any:
    """A runner (n -> None) calling *app* for *path* n times; called once first (a miss, cached)."""
    scope = get_scope(path)

    async def many(n: int) -> None:
        for _ in range(n):
            await app(dict(scope), receive, send)

    loop.run_until_complete(many(1))
    return lambda n: loop.run_until_complete(many(n))
