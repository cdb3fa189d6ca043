"""Fleet mode: one breaker window shared by many processes and hosts, through Redis.

Each process records into its own window at in-memory cost, as always. A
flusher (a daemon thread, or an asyncio task) folds the samples recorded since
its last flush into a shared window in Redis once per bucket, with one atomic
Lua script that uses the server's clock (so the hosts' clocks do not matter),
evicts old buckets by subtraction and lets its keys expire on their own; the
script answers with the fleet's totals, which the breaker then judges by. The
ratio every process sees is the fleet's, within one flush.

When Redis cannot be reached the breaker judges by its own window, logs once,
counts the fault, and rejoins the fleet at the first flush that succeeds. No
error ever reaches a caller of the breaker.

This module imports redis (the ``redis`` extra): it is the edge of vix_ttl.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

import structlog

from vix_ttl._checks import check_seconds, missing_extra

try:
    import redis
except ImportError as exc:
    raise missing_extra(__name__, "redis", exc) from exc
from vix_ttl.window import RollingWindow

__all__ = ["RedisWindow"]

_log = structlog.get_logger("vix_ttl")

# KEYS[1]: the buckets hash ("t:<index>", "p:<index>"), KEYS[2]: the totals hash
# (head, total, panics). ARGV: bucket seconds, bucket count, samples, panics, ttl.
# Everything here comes from this module: no caller's text is ever run.
_FLUSH = """
local now = redis.call('TIME')
local seconds = tonumber(now[1]) + tonumber(now[2]) / 1000000
local index = math.floor(seconds / tonumber(ARGV[1]))
local size = tonumber(ARGV[2])
local head = tonumber(redis.call('HGET', KEYS[2], 'head') or '-1')
if head < 0 or index - head >= size then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'total', 0, 'panics', 0)
elseif index > head then
  for evicted = head - size + 1, index - size do
    local t = tonumber(redis.call('HGET', KEYS[1], 't:' .. evicted) or '0')
    local p = tonumber(redis.call('HGET', KEYS[1], 'p:' .. evicted) or '0')
    if t > 0 then
      redis.call('HINCRBY', KEYS[2], 'total', -t)
      redis.call('HINCRBY', KEYS[2], 'panics', -p)
      redis.call('HDEL', KEYS[1], 't:' .. evicted, 'p:' .. evicted)
    end
  end
end
if index > head then
  redis.call('HSET', KEYS[2], 'head', index)
end
local samples, panics = tonumber(ARGV[3]), tonumber(ARGV[4])
if samples > 0 then
  redis.call('HINCRBY', KEYS[1], 't:' .. math.max(index, head), samples)
  redis.call('HINCRBY', KEYS[1], 'p:' .. math.max(index, head), panics)
  redis.call('HINCRBY', KEYS[2], 'total', samples)
  redis.call('HINCRBY', KEYS[2], 'panics', panics)
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return {tonumber(redis.call('HGET', KEYS[2], 'total')), tonumber(redis.call('HGET', KEYS[2], 'panics'))}
"""


class RedisWindow:
    """A breaker window whose totals are the fleet's, shared through Redis.

    Give it to a breaker: ``VIXCircuitBreaker(name="odds", window=RedisWindow(url, name="odds"))``,
    then ``start()`` it (a daemon thread) or ``await start_async()`` (a task), and ``stop()``
    it at shutdown (a final flush: no count is lost).

    Args:
        url: ``redis://`` or ``rediss://`` (TLS), with a password if the server wants one.
        name: The shared window's name: every process naming it shares it.
        window_seconds, bucket_seconds: As for the breaker; the fleet must agree on them.
        namespace: Prefix of the Redis keys.
        flush_seconds: How often to flush (default: once per bucket).
        timeout: Seconds a Redis call may take before the window falls back.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str,
        window_seconds: float = 1800.0,
        bucket_seconds: float = 1.0,
        namespace: str = "vix_ttl",
        flush_seconds: float | None = None,
        timeout: float = 1.0,
    ) -> None:
        self.local = RollingWindow(window_seconds, bucket_seconds)  # this process's own samples
        if not isinstance(name, str) or not name:
            raise ValueError(f"RedisWindow: name must be a non-empty string, got {name!r}")
        self.name = name
        self.window_seconds, self.bucket_seconds = self.local.window_seconds, self.local.bucket_seconds
        self.flush_seconds = (
            self.bucket_seconds
            if flush_seconds is None
            else check_seconds("RedisWindow flush_seconds", flush_seconds, positive=True)
        )
        timeout = check_seconds("RedisWindow timeout", timeout, positive=True)
        self.lock = threading.Lock()  # the breaker adopts it: flushes and records never interleave
        self._client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._script = self._client.register_script(_FLUSH)
        self._keys = [f"{namespace}:window:{{{name}}}:buckets", f"{namespace}:window:{{{name}}}:totals"]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self.faults = 0
        self.shared = False  # judging by the fleet's totals (else by this process's own)
        self.reset()

    def reset(self) -> None:
        """Forget this process's samples (the fleet's stay in Redis)."""
        self.local.reset()
        self.total = self.panics = 0
        self._pending_total = self._pending_panics = 0  # recorded since the last flush

    @property
    def ratio(self) -> float:
        return self.panics / self.total if self.total else 0.0

    def metrics(self) -> dict[str, Any]:
        """The fleet state, for the breaker's ``metrics()``."""
        return {
            "fleet_window": self.name,
            "fleet_shared": self.shared,
            "fleet_faults": self.faults,
            "local_samples": self.local.total,
        }

    # -- the hot path: the breaker calls these under self.lock ------------------------

    def add(self, now: float, panic: bool) -> None:
        local = self.local
        local.add(now, panic)
        self._pending_total += 1
        self._pending_panics += panic
        if self.shared:
            self.total += 1
            self.panics += panic
        else:
            self.total, self.panics = local.total, local.panics

    def advance(self, now: float) -> None:
        local = self.local
        local.advance(now)
        if not self.shared:  # the fleet's totals move at each flush, by the server's clock
            self.total, self.panics = local.total, local.panics

    # -- the flusher ------------------------------------------------------------------

    def flush(self) -> bool:
        """Send what was recorded since the last flush; take the fleet's totals. False on a fault."""
        with self.lock:
            samples, panics = self._pending_total, self._pending_panics
            self._pending_total = self._pending_panics = 0
        try:
            ttl = int(self.window_seconds + 2 * self.bucket_seconds) + 1
            fleet_total, fleet_panics = self._script(
                keys=self._keys, args=[self.bucket_seconds, self.local.size, samples, panics, ttl]
            )
        except (redis.RedisError, OSError) as exc:
            with self.lock:
                self._pending_total += samples  # kept for the next flush: nothing is lost
                self._pending_panics += panics
                was_shared, self.shared = self.shared, False
                self.total, self.panics = self.local.total, self.local.panics
                self.faults += 1
            if was_shared or self.faults == 1:  # once per outage, not once per flush
                _log.error("fleet_window_unreachable", window=self.name, error=repr(exc), faults=self.faults)
            return False
        with self.lock:
            rejoined = not self.shared and self.faults > 0
            self.shared = True
            # The fleet's totals, plus what this process recorded during the round trip.
            self.total = int(fleet_total) + self._pending_total
            self.panics = int(fleet_panics) + self._pending_panics
        if rejoined:
            _log.info("fleet_window_rejoined", window=self.name, faults=self.faults)
        return True

    def start(self) -> None:
        """Flush from a daemon thread, every ``flush_seconds``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"vix_ttl-fleet-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the flusher and flush one last time."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()

    async def start_async(self) -> None:
        """Flush from an asyncio task; the Redis call runs in a worker thread, off the loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run_async(), name=f"vix_ttl-fleet-{self.name}")

    async def stop_async(self) -> None:
        """Stop the task and flush one last time."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self.flush)

    def _run(self) -> None:
        while not self._stop.wait(self._next_flush()):
            self.flush()

    async def _run_async(self) -> None:
        while True:
            await asyncio.sleep(self._next_flush())
            await asyncio.to_thread(self.flush)

    def _next_flush(self) -> float:
        # Just after the next bucket edge, so each flush closes a bucket.
        return self.flush_seconds - (time.time() % self.flush_seconds) + 0.01
