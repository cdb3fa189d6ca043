"""Fleet mode: one breaker window shared by many processes and hosts, through Redis.

Each process records into its own window at in-memory cost, as always. A
flusher (a daemon thread, or an asyncio task) folds the samples recorded since
its last flush into a shared window in Redis once per bucket, with one atomic
Lua script that uses the server's clock (so the hosts' clocks do not matter),
evicts old buckets by subtraction and lets its keys expire on their own; the
script answers with the fleet's totals, which the breaker then judges by. The
ratio every process sees is the fleet's, within one flush.

The window stays exact and alive:

- evictions are computed and applied in the script itself, a calm bucket (no
  panic) included;
- each flush carries this process's sequence number: one that timed out on its
  way back but ran is sent again, and not applied twice;
- the window's bucket and size live with its totals: a process with other
  settings refuses to join (logged once; it judges by its own window) instead of
  freezing everyone's evictions;
- totals that are not numbers, or negative (anyone can write to the server),
  start the window afresh; totals read back are clamped (0 <= panics <= total);
  buckets evicted under memory pressure while the totals stay start it afresh too;
- the flusher never dies: every fault is logged once per burst and retried at
  the next flush; flushes are spread by a little jitter; ``stop`` never raises.

When Redis cannot be reached the breaker judges by its own window, counts the
fault, and rejoins the fleet at the first flush that succeeds, with nothing lost.
No error ever reaches a caller of the breaker. The client may be a plain Redis,
a Redis Cluster (the window's keys share one hash tag) or a Sentinel master.

This module imports redis (the ``redis`` extra): it is the edge of vix_ttl.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog

from vix_ttl._checks import check_clock, check_name, check_seconds, missing_extra
from vix_ttl._faults import FLEET, FaultLog

try:
    import redis
    import redis.cluster
except ImportError as exc:
    raise missing_extra(__name__, "redis", exc) from exc
from vix_ttl.window import RollingWindow

__all__ = ["RedisWindow"]

_log = structlog.get_logger("vix_ttl")

# KEYS[1]: the buckets hash ("t:<index>", "p:<index>"); KEYS[2]: the totals hash (bucket,
# size, head, total, panics); KEYS[3]: this process's last sequence number applied.
# ARGV: bucket seconds, bucket count, samples, panics, ttl, sequence number, now ('': the
# server's clock). Everything here comes from this module: no caller's text is ever run.
_FLUSH = """
local now
if ARGV[7] ~= '' then
  now = tonumber(ARGV[7])
else
  local time = redis.call('TIME')
  now = tonumber(time[1]) + tonumber(time[2]) / 1000000
end
local bucket, size = ARGV[1], tonumber(ARGV[2])
local index = math.floor(now / tonumber(bucket))
local held = redis.call('HMGET', KEYS[2], 'bucket', 'size', 'head', 'total', 'panics')
if held[1] and (held[1] ~= bucket or tonumber(held[2]) ~= size) then
  local settings = 'bucket ' .. tostring(held[1]) .. ' s, ' .. tostring(held[2]) .. ' buckets'
  return redis.error_reply('VIXSETTINGS ' .. settings)
end
local head, total, panics = tonumber(held[3] or '-1'), tonumber(held[4] or '0'), tonumber(held[5] or '0')
local fresh = 0
if not head or not total or not panics or total < 0 or panics < 0 then
  head, total, panics, fresh = -1, 0, 0, 1
end
if head < 0 or index - head >= size or (total > 0 and redis.call('EXISTS', KEYS[1]) == 0) then
  redis.call('DEL', KEYS[1])
  head, total, panics = index, 0, 0
elseif index > head then
  for evicted = head - size + 1, index - size do
    local t = tonumber(redis.call('HGET', KEYS[1], 't:' .. evicted) or '0') or 0
    local p = tonumber(redis.call('HGET', KEYS[1], 'p:' .. evicted) or '0') or 0
    total, panics = total - t, panics - p
    redis.call('HDEL', KEYS[1], 't:' .. evicted, 'p:' .. evicted)
  end
  head = index
end
local sequence = tonumber(ARGV[6])
if sequence > (tonumber(redis.call('GET', KEYS[3]) or '0') or 0) then
  local samples, new_panics = tonumber(ARGV[3]), tonumber(ARGV[4])
  if samples > 0 then
    redis.call('HINCRBY', KEYS[1], 't:' .. head, samples)
    redis.call('HINCRBY', KEYS[1], 'p:' .. head, new_panics)
    total, panics = total + samples, panics + new_panics
  end
  redis.call('SET', KEYS[3], sequence, 'EX', ARGV[5])
end
if total <= 0 then total = 0 end
if panics <= 0 then panics = 0 end
if panics > total then panics = total end
redis.call('HSET', KEYS[2], 'bucket', bucket, 'size', size, 'head', head, 'total', total, 'panics', panics)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return {total, panics, fresh}
"""
_SETTINGS = "VIXSETTINGS"
_REPLICATION_MS = 500  # how long a flush waits for a replica to have it, when the master has one


class RedisWindow:
    """A breaker window whose totals are the fleet's, shared through Redis.

    Give it to a breaker: ``VIXCircuitBreaker(name="odds", window=RedisWindow(url, name="odds"))``,
    then ``start()`` it (a daemon thread) or ``await start_async()`` (a task), and ``stop()``
    it at shutdown (a final flush: no count is lost).

    Args:
        url: ``redis://`` or ``rediss://`` (TLS), with a password if the server wants one.
        client: Instead of *url*: a ``redis.Redis``, a ``redis.cluster.RedisCluster`` or a
            Sentinel ``master_for(...)`` client (synchronous: the flusher runs in a thread).
        name: The shared window's name: every process naming it shares it.
        window_seconds, bucket_seconds: As for the breaker; the fleet must agree on them
            (a process that does not, judges by its own window, and says so once).
        namespace: Prefix of the Redis keys.
        flush_seconds: How often to flush (default: once per bucket; at most the window).
        timeout: Seconds a Redis call may take before the window falls back (with *url*).
        clock: What buckets are timed by (default: the Redis server's clock, so the hosts'
            clocks do not matter); a ``FakeClock`` in tests.

    Raises:
        TypeError, ValueError: a setting out of range, or not exactly one of *url* / *client*.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        name: str,
        window_seconds: float = 1800.0,
        bucket_seconds: float = 1.0,
        namespace: str = "vix_ttl",
        flush_seconds: float | None = None,
        timeout: float = 1.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.local = RollingWindow(window_seconds, bucket_seconds)  # this process's own samples
        if not isinstance(name, str) or not name:
            raise ValueError(f"RedisWindow: name must be a non-empty string, got {name!r}")
        check_name("RedisWindow namespace", namespace)
        self.name = name
        self.window_seconds, self.bucket_seconds = self.local.window_seconds, self.local.bucket_seconds
        self.flush_seconds = (
            self.bucket_seconds
            if flush_seconds is None
            else check_seconds("RedisWindow flush_seconds", flush_seconds, positive=True)
        )
        if self.flush_seconds > self.window_seconds:
            raise ValueError(
                f"RedisWindow flush_seconds ({flush_seconds!r}) must not exceed window_seconds "
                f"({window_seconds!r}): the fleet would judge by samples older than its window"
            )
        timeout = check_seconds("RedisWindow timeout", timeout, positive=True)
        self._clock = None if clock is None else check_clock("RedisWindow clock", clock)
        self.lock = threading.Lock()  # the breaker adopts it: flushes and records never interleave
        self._client = _client(url, client, timeout)
        self._script = self._client.register_script(_FLUSH)
        # One hash tag for the window's keys: a Redis Cluster keeps them on one node, as its
        # script needs. This process's sequence numbers live in a key of its own, that expires.
        tagged = f"{namespace}:window:{{{name}}}"
        self._keys = [f"{tagged}:buckets", f"{tagged}:totals", f"{tagged}:flushed:{uuid.uuid4().hex}"]
        self._ttl = int(self.window_seconds + 2 * self.bucket_seconds) + 1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._faults = FaultLog(f"RedisWindow({name})", events=FLEET)
        self._sequence = 0
        self._unacknowledged: tuple[int, int, int] | None = None  # (sequence, samples, panics) sent
        self._settings_differ = False
        self._replicas: int | None = None  # the master's replicas, once asked
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
        """Send what was recorded since the last flush; take the fleet's totals. False on a fault.

        Never raises: a fault is logged once per burst, counted, and the samples are kept
        for the next flush (a batch that was sent and may have been applied is sent again
        with its sequence number, and applied at most once).
        """
        for _ in range(2):  # a batch left from a failed flush first, then what came since
            with self.lock:
                retried = self._unacknowledged is not None
                if self._unacknowledged is None:
                    self._sequence += 1
                    self._unacknowledged = (self._sequence, self._pending_total, self._pending_panics)
                    self._pending_total = self._pending_panics = 0
                batch = self._unacknowledged
            try:
                totals = self._send(batch)
            except Exception as exc:
                self._replicas = None  # asked again: a failover may have changed the master
                self._fall_back(exc)
                return False
            with self.lock:
                self._unacknowledged = None
                self.shared = True
                # The fleet's totals, plus what this process recorded during the round trip.
                self.total = totals[0] + self._pending_total
                self.panics = totals[1] + self._pending_panics
                more = retried and self._pending_total > 0  # recorded since the batch retried now
            self._faults.recovered("flush")  # logs fleet_window_rejoined after a burst
            self._settings_differ = False
            if not more:
                break
        return True

    def _send(self, batch: tuple[int, int, int]) -> tuple[int, int]:
        """Run the flush script for *batch*: the fleet's (total, panics), clamped."""
        sequence, samples, panics = batch
        now = "" if self._clock is None else repr(float(self._clock()))
        try:
            total, fleet_panics, fresh = self._script(
                keys=self._keys,
                args=[repr(self.bucket_seconds), self.local.size, samples, panics, self._ttl, sequence, now],
            )
        except redis.ResponseError as exc:
            if str(exc).startswith(_SETTINGS):
                raise _SettingsError(str(exc).removeprefix(_SETTINGS).strip()) from None
            raise
        if fresh:
            _log.warning("fleet_window_restarted", window=self.name, why="its totals were not numbers")
        self._replicated()
        total = max(0, int(total))
        return total, min(max(0, int(fleet_panics)), total)

    def _replicated(self) -> None:
        """Wait for a replica to have the flush, when the master has one (Sentinel, a replicated
        master): a flush the master applied and lost in a failover is sent again to the new one,
        and one it had passed on is not applied twice (its sequence number went with it)."""
        client = self._client
        if not isinstance(client, redis.Redis):  # a cluster's nodes: its own replication
            return
        if self._replicas is None:
            self._replicas = int(client.info("replication").get("connected_slaves", 0))
        if self._replicas and client.wait(1, _REPLICATION_MS) < 1:
            raise _NotReplicatedError("no replica acknowledged the flush: it is sent again")

    def _fall_back(self, exc: Exception) -> None:
        """Judge by this process's own window; log once per burst (a settings mismatch, once)."""
        with self.lock:
            self.shared = False
            self.total, self.panics = self.local.total, self.local.panics
            self.faults += 1
        if isinstance(exc, _SettingsError):
            if not self._settings_differ:
                self._settings_differ = True
                _log.error(
                    "fleet_window_settings_differ",
                    window=self.name,
                    fleet=str(exc),
                    here=f"bucket {self.bucket_seconds!r} s, {self.local.size} buckets",
                    hint="every process sharing a window needs the same window_seconds and bucket_seconds; "
                    "this one judges by its own window meanwhile",
                )
            return
        self._faults.failed("flush", exc)

    def start(self) -> None:
        """Flush from a daemon thread, every ``flush_seconds``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"vix_ttl-fleet-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the flusher and flush one last time. Never raises."""
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
        """Stop the task and flush one last time. Never raises."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
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
        # Just after the next bucket edge, so each flush closes a bucket; a little later for
        # some processes than others, so a fleet does not flush all at once.
        jitter = random.uniform(0.01, 0.1) * self.flush_seconds
        return self.flush_seconds - (time.time() % self.flush_seconds) + jitter


class _NotReplicatedError(Exception):
    """The master has replicas, and none acknowledged a flush in time."""


class _SettingsError(Exception):
    """The shared window was made with another bucket or size than this process's."""


def _client(url: str | None, client: Any, timeout: float) -> Any:
    """The synchronous Redis client of a window, from exactly one of *url* and *client*."""
    if (url is None) == (client is None):
        raise TypeError("RedisWindow takes exactly one of url= (a redis:// URL) and client= (a Redis client)")
    if client is not None:
        if not isinstance(client, redis.Redis | redis.cluster.RedisCluster):
            raise TypeError(
                f"RedisWindow client= must be a synchronous redis.Redis, redis.cluster.RedisCluster or "
                f"Sentinel master_for(...) client (the flusher runs in a thread), got {client!r}"
            )
        return client
    if not isinstance(url, str) or not url:
        raise TypeError(f"RedisWindow url must be a redis:// or rediss:// URL, got {url!r}")
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
