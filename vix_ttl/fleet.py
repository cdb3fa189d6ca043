"""Fleet mode: one breaker window shared by many processes and hosts, through Redis.

Each process records into its own window at in-memory cost, as always. A
flusher (a daemon thread, or an asyncio task) folds the samples recorded since
its last flush into a shared window in Redis once per bucket, with one atomic
Lua script that uses the server's clock (so the hosts' clocks do not matter),
evicts old buckets by subtraction and lets its keys expire on their own; the
script answers with the fleet's totals, which the breaker then judges by. The
ratio every process sees is the fleet's, within one flush.

The window stays exact and alive:

- samples go to the bucket they were recorded in: each is sent with its age in
  buckets (this process's clock measures ages, the server's places them), so
  samples held through an outage land where they belong, or nowhere once older
  than the window;
- each batch carries this process's sequence number: one that timed out on its
  way back but ran, or that no replica acknowledged, is sent again, and applied
  at most once;
- the script reads and checks everything before it writes anything (Redis does
  not roll a script back): totals or buckets that are not what a window holds
  (anyone can write to the server), buckets evicted under the totals, or a head
  in the future (a failover to a server whose clock is behind) start the window
  afresh under a new epoch;
- a window that started afresh, or whose keys were lost (a restart, a failover
  to an empty master), is refilled: each process that had joined the old epoch
  sends its own window again, so the fleet's totals come back whole;
- the window's bucket and size live with its totals: a process with other
  settings refuses to join (logged once; it judges by its own window) instead of
  freezing everyone's evictions;
- the flusher never dies: every fault is logged once per burst and retried at
  the next flush; flushes are spread by a little jitter; ``stop`` never raises.

When Redis cannot be reached the breaker judges by its own window, counts the
fault, and rejoins the fleet at the first flush that succeeds, with nothing lost.
No error ever reaches a caller of the breaker. The client may be a plain Redis,
a Redis Cluster (the window's keys share one hash tag) or a Sentinel master
(a flush waits for a replica to acknowledge it when the master has one).

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
from typing import Any, NamedTuple

from vix_ttl._checks import check_clock, check_name, check_seconds, missing_extra
from vix_ttl._faults import FLEET, NOT_REPLICATED, FaultLog
from vix_ttl._log import get_logger
from vix_ttl._redis import socket_timeout

try:
    import redis
    import redis.cluster
except ImportError as exc:
    raise missing_extra(__name__, "redis", exc) from exc
from vix_ttl.window import RollingWindow

__all__ = ["RedisWindow"]

_log = get_logger(__name__)

# KEYS[1]: the buckets hash ("t:<index>", "p:<index>"); KEYS[2]: the totals hash (bucket,
# size, head, total, panics, epoch); KEYS[3]: this process's last sequence number applied.
# ARGV: bucket seconds, bucket count, ttl, now ('': the server's clock), the epoch this
# process joined ('': none yet), '1' to ask how many replicas the master has, then its
# batches: sequence, n, and n (age, samples, panics). It answers {total, panics, epoch,
# applied (0: refill your window first), why it started afresh ('' if it did not), the
# master's replicas (-1: not asked)}. Everything here comes from this module:
# no caller's text is ever run.
_FLUSH = """
local now
if ARGV[4] ~= '' then
  now = tonumber(ARGV[4])
else
  local time = redis.call('TIME')
  now = tonumber(time[1]) + tonumber(time[2]) / 1000000
end
local bucket, size, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local index = math.floor(now / tonumber(bucket))
local replicas = -1
if ARGV[6] == '1' then
  replicas = tonumber(string.match(redis.call('INFO', 'replication'), 'connected_slaves:(%d+)') or '0')
end

local function whole(value)
  local number = tonumber(value or '0')
  if number and number >= 0 and number == math.floor(number) then return number end
  return nil
end
local function fields_of(indexes)
  local fields = {}
  for _, at in ipairs(indexes) do
    table.insert(fields, 't:' .. at)
    table.insert(fields, 'p:' .. at)
  end
  return fields
end
-- HMGET, HDEL and HSET in chunks (Lua unpacks a few thousand values at most; chunks of an
-- even size keep HSET's field-value pairs whole). nil: the key is not a hash.
local function chunked(command, key, fields)
  local replies = {}
  for first = 1, #fields, 1000 do
    local reply = redis.pcall(command, key, unpack(fields, first, math.min(first + 999, #fields)))
    if type(reply) == 'table' and reply['err'] then
      if string.find(reply['err'], 'WRONGTYPE') then return nil end
      error(reply)
    end
    if type(reply) == 'table' then
      for _, value in ipairs(reply) do table.insert(replies, value) end
    end
  end
  return replies
end

-- The batches not applied yet, summed per bucket (targets: their indexes, in order).
local last = whole(redis.call('GET', KEYS[3])) or 0
local adds, targets, newest = {}, {}, last
local position = 7
while position <= #ARGV do
  local sequence, n = tonumber(ARGV[position]), tonumber(ARGV[position + 1])
  for entry = 0, n - 1 do
    local at = position + 2 + 3 * entry
    local age, samples, new_panics = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
    if sequence > last and age >= 0 and age < size and samples > 0 then
      local target = index - age
      if not adds[target] then
        adds[target] = {0, 0}
        table.insert(targets, target)
      end
      adds[target][1] = adds[target][1] + samples
      adds[target][2] = adds[target][2] + new_panics
    end
  end
  if sequence > newest then newest = sequence end
  position = position + 2 + 3 * n
end

-- Read and check everything: nothing is written before the window is known to be sound.
local why = ''
local head, total, panics, epoch = index, 0, 0, nil
local evicted, emptied, held_targets = {}, false, {}
local held = redis.pcall('HMGET', KEYS[2], 'bucket', 'size', 'head', 'total', 'panics', 'epoch')
if held['err'] then
  why = 'its keys were not hashes'
elseif held[1] then
  local held_bucket, held_size = tonumber(held[1]), whole(held[2])
  if held_bucket and held_bucket > 0 and held_size and held_size > 0
      and (held_bucket ~= tonumber(bucket) or held_size ~= size) then
    return redis.error_reply('VIXSETTINGS bucket ' .. held[1] .. ' s, ' .. held[2] .. ' buckets')
  end
  head, total, panics, epoch = whole(held[3]), whole(held[4]), whole(held[5]), held[6]
  if not (held_bucket and held_size and head and total and panics) or panics > total
      or not string.match(epoch or '', '^%d+%.%d+$') then
    why = 'its totals were not what a window holds'
  elseif head > index then
    why = "its newest bucket was in the future (the server's clock went back)"
  elseif total > 0 and redis.call('EXISTS', KEYS[1]) == 0 then
    why = 'its buckets were evicted'
  elseif index - head >= size then
    head, total, panics, emptied = index, 0, 0, true
  else
    local gone = {}
    for at = head - size + 1, index - size do table.insert(gone, at) end
    evicted = fields_of(gone)
    local checked = {}
    for _, field in ipairs(evicted) do table.insert(checked, field) end
    for _, field in ipairs(fields_of(targets)) do table.insert(checked, field) end
    local values = chunked('HMGET', KEYS[1], checked)
    if values == nil then
      why = 'its keys were not hashes'
    else
      for i = 1, #checked, 2 do
        local t, p = whole(values[i]), whole(values[i + 1])
        if not (t and p) or p > t then
          why = 'its buckets were not what a window holds'
          break
        end
        if i <= #evicted then
          total, panics = total - t, panics - p
        else
          held_targets[targets[(i - #evicted + 1) / 2]] = {t, p}
        end
      end
    end
    head = index
    if why == '' and (total < 0 or panics < 0 or panics > total) then
      why = 'its totals did not match its buckets'
    end
  end
end
if why ~= '' or not epoch then
  redis.call('DEL', KEYS[1], KEYS[2])
  head, total, panics, evicted, emptied, held_targets = index, 0, 0, {}, false, {}
  local time = redis.call('TIME')
  epoch = time[1] .. '.' .. time[2]
end

-- The batches (unless this process must refill a new epoch first), then every write.
local applied = (ARGV[5] == '' or ARGV[5] == epoch) and 1 or 0
local writes = {}
if applied == 1 then
  for _, target in ipairs(targets) do
    local t, p = 0, 0
    if held_targets[target] then t, p = held_targets[target][1], held_targets[target][2] end
    table.insert(writes, 't:' .. target)
    table.insert(writes, t + adds[target][1])
    table.insert(writes, 'p:' .. target)
    table.insert(writes, p + adds[target][2])
    total, panics = total + adds[target][1], panics + adds[target][2]
  end
end
-- The first write needs memory: a server out of memory refuses it, and so the whole flush.
redis.call('HSET', KEYS[2], 'bucket', bucket, 'size', size, 'head', head, 'total', total,
  'panics', panics, 'epoch', epoch)
if emptied then
  redis.call('DEL', KEYS[1])
elseif #evicted > 0 then
  chunked('HDEL', KEYS[1], evicted)
end
if #writes > 0 then chunked('HSET', KEYS[1], writes) end
if applied == 1 and newest > last then redis.call('SET', KEYS[3], newest, 'EX', ttl) end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return {total, panics, epoch, applied, why, replicas}
"""
_SETTINGS = "VIXSETTINGS"
_ASK_REPLICAS_EVERY = 10  # flushes: a replica that appears is waited for from then on
_REFILLS = 3  # a window that starts afresh at every flush is a fault
_REPLICATION_MS = 500  # how long a flush waits for a replica to have it, when the master has one
MIN_FLUSH_SECONDS = 0.01
"""The shortest ``flush_seconds``: a hundred flushes a second is already more than a window needs."""


class _Batch(NamedTuple):
    """Samples sent together, applied at most once: (bucket index, samples, panics) entries."""

    sequence: int
    entries: tuple[tuple[int, int, int], ...]


class _Reply(NamedTuple):
    total: int
    panics: int
    epoch: str
    applied: bool
    restarted: str
    replicated: bool
    waited: bool


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
        if not isinstance(name, str):
            raise TypeError(f"RedisWindow: name must be a string, got {name!r}")
        if not name or "{" in name or "}" in name:
            raise ValueError(
                f"RedisWindow: name must be a non-empty string without braces (it is the keys' Redis "
                f"Cluster hash tag), got {name!r}"
            )
        check_name("RedisWindow namespace", namespace)
        self.name = name
        self.window_seconds, self.bucket_seconds = self.local.window_seconds, self.local.bucket_seconds
        self.flush_seconds = (
            self.bucket_seconds
            if flush_seconds is None
            else check_seconds("RedisWindow flush_seconds", flush_seconds, positive=True)
        )
        if self.flush_seconds < MIN_FLUSH_SECONDS:
            raise ValueError(
                f"RedisWindow flush_seconds ({flush_seconds!r}) must be at least {MIN_FLUSH_SECONDS} s: "
                f"each flush is a round trip to Redis"
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
        monotonic = self._clock or time.monotonic
        # One flush per bucket: the first that succeeds ends a burst (no flapping to smooth over).
        owner = f"RedisWindow({name})"
        self._faults = FaultLog(owner, events=FLEET, quiet_seconds=0, clock=monotonic)
        self._lagging = FaultLog(owner, events=NOT_REPLICATED, quiet_seconds=0, clock=monotonic)
        self._sequence = 0
        self._unconfirmed: list[_Batch] = []  # sent, and not known to be applied and replicated
        self._epoch = ""  # the shared window this process joined ("": none yet)
        self._settings_differ = False
        self._replicas = 0  # the master's replicas, as a flush last asked
        self._until_asked = 0  # flushes until it is asked again
        # A flush waits for a replica well within the socket's timeout: a stalled replica is
        # a flush not yet replicated, never a master that seems unreachable.
        client_timeout = socket_timeout(self._client) or timeout
        self._wait_ms = max(1, min(_REPLICATION_MS, int(client_timeout * 1000 / 2)))
        self.faults = 0
        self.shared = False  # judging by the fleet's totals (else by this process's own)
        self.reset()

    def reset(self) -> None:
        """Forget this process's samples (the fleet's stay in Redis)."""
        self.local.reset()
        self.total = self.panics = 0
        # What the last flush took of the local window: its newest bucket then, and that
        # bucket's counts; anything newer is pending (samples only ever go to the newest bucket).
        self._taken = (-1, 0, 0)

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

    def _pending(self) -> list[tuple[int, int, int]]:
        """What was recorded since the last flush, by bucket: (index, samples, panics)."""
        local, (taken, taken_samples, taken_panics) = self.local, self._taken
        pending = []
        for index in range(max(taken, local.newest - local.size + 1), local.newest + 1):
            samples, panics = local.bucket(index)
            if index == taken:
                samples, panics = samples - taken_samples, panics - taken_panics
            if samples > 0:
                pending.append((index, samples, panics))
        return pending

    def _take_pending(self) -> tuple[tuple[int, int, int], ...]:
        """``_pending()``, which from now on is not pending any more."""
        pending = self._pending()
        self._taken = (self.local.newest, *self.local.bucket(self.local.newest))
        return tuple(pending)

    def flush(self) -> bool:
        """Send what was recorded since the last flush; take the fleet's totals. False on a fault.

        Never raises: a fault is logged once per burst, counted, and the samples are kept
        for the next flush (a batch that was sent and may have been applied is sent again
        with its sequence number, and applied at most once).
        """
        with self.lock:
            entries = self._take_pending()
            if entries:
                self._sequence += 1
                self._unconfirmed.append(_Batch(self._sequence, entries))
        try:
            reply = self._send()
            for _ in range(_REFILLS):
                if reply.applied:
                    break
                self._refill(reply)  # a new epoch: the window was lost, or started afresh
                reply = self._send()
            else:
                raise RuntimeError("the shared window started afresh at every flush: judging alone meanwhile")
            if reply.restarted and reply.applied:
                _log.warning("fleet_window_restarted", window=self.name, why=reply.restarted)
        except Exception as exc:
            self._replicas = self._until_asked = 0  # asked again: a failover may have changed the master
            self._fall_back(exc)
            return False
        with self.lock:
            self._epoch = reply.epoch
            if reply.replicated:
                self._unconfirmed = []
            self.shared = True
            # The fleet's totals, plus what this process recorded during the round trip.
            recorded = self._pending()
            self.total = reply.total + sum(entry[1] for entry in recorded)
            self.panics = reply.panics + sum(entry[2] for entry in recorded)
        self._faults.recovered("flush")  # logs fleet_window_rejoined after a burst
        if reply.replicated:
            self._lagging.recovered("replicate")
        elif reply.waited:
            self._lagging.failed("replicate", _NotReplicatedError(self._replicas, self._wait_ms))
        self._settings_differ = False
        return True

    def _refill(self, reply: _Reply) -> None:
        """Join the window's new epoch with everything this process holds within the window:
        every process that had joined the old one does, so the fleet's totals come back whole."""
        _log.warning(
            "fleet_window_restarted",
            window=self.name,
            why=reply.restarted or "its keys were gone (a restart, a failover to an empty master)",
            refilled_with=self.local.total,
        )
        with self.lock:  # the pending samples are in the local window too: sent once, with it
            self._take_pending()
            self._sequence += 1
            self._unconfirmed = [_Batch(self._sequence, tuple(self.local.buckets()))]
            self._epoch = reply.epoch

    def _send(self) -> _Reply:
        """Run the flush script with every unconfirmed batch (then ``WAIT`` for a replica, when
        the master has one): the fleet's totals, clamped, and whether the batches are safe."""
        with self.lock:
            newest = self.local.newest  # ages are counted from this process's newest sample
            batches, epoch = list(self._unconfirmed), self._epoch
        args: list[Any] = [repr(self.bucket_seconds), self.local.size, self._ttl]
        ask = self._until_asked <= 0  # how many replicas the master has, now and then
        args += ["" if self._clock is None else repr(float(self._clock())), epoch, "1" if ask else ""]
        for batch in batches:
            entries = [
                (newest - index, t, p) for index, t, p in batch.entries if newest - index < self.local.size
            ]
            args += [batch.sequence, len(entries), *(value for entry in entries for value in entry)]
        waits = self._replicas > 0 and isinstance(self._client, redis.Redis)  # a cluster replicates alone
        try:
            if waits:
                pipe = self._client.pipeline(transaction=False)  # one connection: WAIT is for its writes
                pipe.evalsha(self._script.sha, len(self._keys), *self._keys, *args)
                pipe.wait(1, self._wait_ms)
                result, acknowledged = pipe.execute()
            else:
                result, acknowledged = self._script(keys=self._keys, args=args), 0
        except redis.exceptions.NoScriptError:  # a new or restarted server: loaded, waited for next time
            result, acknowledged = self._script(keys=self._keys, args=args), 0
        except redis.ResponseError as exc:
            if str(exc).startswith(_SETTINGS):
                raise _SettingsError(str(exc).removeprefix(_SETTINGS).strip()) from None
            raise
        total, panics, fleet_epoch, applied, restarted, replicas = result
        if int(replicas) >= 0:
            self._replicas, self._until_asked = int(replicas), _ASK_REPLICAS_EVERY
        self._until_asked -= 1
        total = max(0, int(total))
        return _Reply(
            total=total,
            panics=min(max(0, int(panics)), total),
            epoch=fleet_epoch.decode() if isinstance(fleet_epoch, bytes) else str(fleet_epoch),
            applied=bool(applied),
            restarted=restarted.decode() if isinstance(restarted, bytes) else str(restarted),
            # A master with replicas may lose what none of them has: sent again until one has it.
            replicated=not self._replicas or (waits and int(acknowledged) >= 1),
            waited=waits,
        )

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
    """The master has replicas, and none acknowledged a flush in time: it is sent again."""

    def __init__(self, replicas: int, waited_ms: int) -> None:
        super().__init__(
            f"none of the master's {replicas} replicas acknowledged the flush within {waited_ms} ms: "
            f"the fleet's totals are the master's, and the flush is sent again until a replica has it"
        )


class _SettingsError(Exception):
    """The shared window was made with another bucket or size than this process's."""


def _client(url: str | None, client: Any, timeout: float) -> Any:
    """The synchronous Redis client of a window, from exactly one of *url* and *client*."""
    if (url is None) == (client is None):
        raise TypeError("RedisWindow takes exactly one of url= (a redis:// URL) and client= (a Redis client)")
    if client is not None:
        if not isinstance(client, redis.Redis | redis.cluster.RedisCluster) or isinstance(
            client, redis.client.Pipeline | redis.cluster.ClusterPipeline
        ):
            raise TypeError(
                f"RedisWindow client= must be a synchronous redis.Redis, redis.cluster.RedisCluster or "
                f"Sentinel master_for(...) client (the flusher runs in a thread), got {client!r}"
            )
        return client
    if not isinstance(url, str) or not url:
        raise TypeError(f"RedisWindow url must be a redis:// or rediss:// URL, got {url!r}")
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
