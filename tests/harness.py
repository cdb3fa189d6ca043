"""One decision-path suite, many stores: a decorated function behind one async interface."""

from __future__ import annotations

import multiprocessing
from collections.abc import Awaitable, Callable
from typing import Any

import cachetools
import pytest
from aiocache import MemcachedCache, RedisCache, SimpleMemoryCache

from vix_ttl import Mode, VIXCircuitBreaker
from vix_ttl import _typed as typed
from vix_ttl.decorator import CacheInfo, vix_cached
from vix_ttl.testing import FakeClock

STORES = ["memory-sync", "memory-async", "mapping-sync", "aiocache-memory", "redis", "memcached"]


def store_params(names: list[str]) -> list[Any]:
    """*names* as pytest params, the server-backed ones marked (`-m "not redis"`)."""
    marks = {"redis": pytest.mark.redis, "memcached": pytest.mark.memcached}
    return [pytest.param(name, marks=marks[name]) if name in marks else name for name in names]


class Harness:
    """A decorated ``price(x)`` on a fake clock, a breaker whose mode the test sets,
    and a record of every real computation."""

    def __init__(self, store: str, *, redis_port: int = 0, memcached_port: int = 0) -> None:
        self.store = store
        self.clock = FakeClock(1_000_000.0)
        # A long window holding 1,000 samples: the test's own few calls do not
        # move the mode it set, and advancing the clock does not drain it.
        self.breaker = VIXCircuitBreaker(window_seconds=3600, clock=self.clock)
        self.enter(Mode.NORMAL)
        self.status = "normal"
        self.computes: list[Any] = []
        self.fail_next: Exception | None = None
        self.cache: Any = {
            "memory-sync": None,
            "memory-async": None,
            "mapping-sync": cachetools.TTLCache(maxsize=100, ttl=3600, timer=self.clock),
            "aiocache-memory": SimpleMemoryCache(),
            "redis": RedisCache(endpoint="127.0.0.1", port=redis_port, timeout=2),
            "memcached": MemcachedCache(endpoint="127.0.0.1", port=memcached_port, timeout=2),
        }[store]

    async def start(self) -> None:
        if self.cache is not None and not isinstance(self.cache, cachetools.Cache):
            await self.cache.clear()  # the test servers are ours: start empty

    async def close(self) -> None:
        if self.cache is not None and not isinstance(self.cache, cachetools.Cache):
            await self.cache.close()

    def make(self, ttl: Any = 60, **options: Any) -> Callable[[Any], Awaitable[Any]]:
        decorate = vix_cached(
            ttl,
            status=lambda x: self.status,
            breaker=self.breaker,
            cache=self.cache,
            clock=self.clock,
            **options,
        )
        if self.store.endswith("-sync"):
            sync = decorate(self._compute_sync)
            self.function: Any = sync

            async def call(x: Any) -> Any:
                return sync(x)

            return call
        self.function = decorate(self._compute_async)
        return self.function  # type: ignore[no-any-return]

    def _compute_sync(self, x: Any) -> Any:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        self.computes.append(x)
        return None if x is None else f"price-{x}-{len(self.computes)}"

    async def _compute_async(self, x: Any) -> Any:
        return self._compute_sync(x)

    def info(self) -> CacheInfo:
        return self.function.cache_info()  # type: ignore[no-any-return]

    def enter(self, mode: Mode) -> None:
        """Put the breaker in *mode*: 1,000 samples now, the calm ones first."""
        self.breaker.reset()
        panics = {Mode.NORMAL: 0, Mode.HIGH_VOLATILITY: 600, Mode.CIRCUIT_OPEN: 1000}[mode]
        for i in range(1000):
            self.breaker.record("panic" if i >= 1000 - panics else "normal")
        assert self.breaker.mode is mode


def run_fleet(target: Callable[..., None], *args: Any, processes: int, timeout: float = 60) -> list[Any]:
    """Run *processes* spawned processes of ``target(*args, barrier, results)``: what each put on
    *results*. The barrier lets them start together (a rendezvous, not a clock)."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    fleet = [context.Process(target=target, args=(*args, barrier, results)) for _ in range(processes)]
    for process in fleet:
        process.start()
    outcomes = [results.get(timeout=timeout) for _ in fleet]
    for process in fleet:
        process.join(timeout)
    return outcomes


def get_scope(
    path: str, *, raw_path: bytes | None = None, extensions: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An ASGI scope of a plain GET of *path*, as uvicorn gives it (*raw_path*: as sent)."""
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
        "raw_path": path.encode() if raw_path is None else raw_path,
        "query_string": b"",
        "headers": [(b"host", b"odds.test"), (b"accept", b"*/*")],
        "extensions": extensions or {},
    }


def rewrite_entry(raw: bytes, change: Callable[[Any], None]) -> bytes:
    """A vix_ttl entry *raw* as its header and signature were, its value changed in place by
    *change*: what someone who can write to the server, and can read the format, plants."""
    head, _, payload = raw.partition(b"\n")
    value = typed.loads(payload)
    change(value)
    rewritten = typed.dumps_text(value).encode() if payload.startswith(b"~") else typed.dumps(value)
    return head + b"\n" + rewritten
