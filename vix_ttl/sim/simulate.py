"""The scenario simulator: real vix_ttl code under simulated traffic, on virtual time.

What is simulated: time (an asyncio loop on a virtual clock, advanced in steps
of ``step`` seconds; the default 1/32 s keeps every time exact in binary
floating point, so an age equal to a TTL is never mistaken for one below it),
the traffic (``rate`` requests a second, arriving at each step; a hot key
takes ``hot_share`` of them, ``keys`` others share the rest) and the backend
(a computation of ``latency`` seconds, rounded up to whole steps: 50 ms runs
as 2 steps, 62.5 ms). What is real: everything between a request and the backend — the
``@vix_cached`` wrapper, its in-process store, in-flight coalescing, the
breaker, its window, its mode machine and its policy — run call by call, with
every request one call.

Strategies see the same traffic:

- ``bypass``: the naive cache — panic always means TTL 0; no breaker, no coalescing;
- ``breaker``: vix_ttl with coalescing off;
- ``breaker+coalesce``: vix_ttl as shipped;
- ``breaker+coalesce+swr`` / ``+early`` / ``+learned``: with stale-while-revalidate,
  early refresh, or the learned change-rate policy (``TTLPolicy.learned()``);
- ``fixed:<seconds>``: one TTL whatever happens (0: compute every call), coalesced,
  the baseline of ``vix-ttl frontier``.

``simulate`` runs one strategy; ``run`` runs several, each in a process of its
own, with a progress bar.

The simulator also knows the truth (``vix_ttl.sim.truth``): the backend returns the
version of the key's true value when its computation began, so every served
value is judged right or wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import math
import multiprocessing
import queue
import random
import signal
import sys
import threading
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from vix_ttl._checks import missing_extra
from vix_ttl.breaker import VIXCircuitBreaker
from vix_ttl.decorator import vix_cached
from vix_ttl.mode import Mode, Transition
from vix_ttl.policy import BASE, BYPASS, TTLPolicy
from vix_ttl.sim._virtual_loop import VirtualTimeLoop
from vix_ttl.sim.scenario import Scenario
from vix_ttl.sim.truth import Truth
from vix_ttl.status import VixStatus

__all__ = [
    "DEFAULT_STRATEGIES",
    "FIXED",
    "STRATEGIES",
    "StrategyResult",
    "check_strategy",
    "run",
    "share",
    "simulate",
]

STRATEGIES = (
    "bypass",
    "breaker",
    "breaker+coalesce",
    "breaker+coalesce+swr",
    "breaker+coalesce+early",
    "breaker+coalesce+learned",
)
DEFAULT_STRATEGIES = STRATEGIES[:3]
"""What ``vix-ttl simulate`` runs unless told: the story of the breaker itself."""

SWR_SECONDS = 5.0
"""``stale_while_revalidate`` of the ``+swr`` strategy, in every mode."""
EARLY_BETA = 1.0
"""``early_refresh`` of the ``+early`` strategy."""

_NAIVE_POLICY = TTLPolicy({mode: {"panic": BYPASS, "warning": BASE, "normal": BASE} for mode in Mode})
"""What a cache without a breaker does: bypass on panic, whatever has been happening."""

FIXED = "fixed:"
"""The prefix of a fixed-TTL strategy: ``fixed:5`` caches everything for 5 s."""


def check_strategy(strategy: str) -> float | None:
    """The TTL of a ``fixed:<seconds>`` strategy, None for a named one; ValueError for neither."""
    if strategy in STRATEGIES:
        return None
    if strategy.startswith(FIXED):
        try:
            ttl = float(strategy.removeprefix(FIXED))
        except ValueError:
            ttl = math.nan
        if math.isfinite(ttl) and ttl >= 0:
            return ttl
        raise ValueError(
            f"strategy {strategy!r}: {FIXED}<seconds> needs a finite TTL >= 0, "
            f"got {strategy.removeprefix(FIXED)!r}"
        )
    raise ValueError(
        f"unknown strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}, "
        f"or {FIXED}<seconds> (a fixed TTL >= 0)"
    )


def _fixed_policy(ttl: float) -> TTLPolicy:
    """One TTL whatever the mode and status (0: bypass, every call computes)."""
    rule = BYPASS if ttl == 0 else ttl
    return TTLPolicy({mode: dict.fromkeys(VixStatus, rule) for mode in Mode})


@dataclass(frozen=True, slots=True)
class _Value:
    """What the simulated backend returns: its key's true version when the computation began."""

    key: int
    version: int
    produced_at: float = field(compare=False)
    """When the computation ended (ages are measured from it); not part of the value."""
    moved_at: float = field(compare=False)
    """When the truth next changed after the computation began: served from then on, it is wrong."""


@dataclass
class StrategyResult:
    """What one strategy did to the backend and what it served."""

    strategy: str
    requests: int = 0
    computes: int = 0
    computes_in_panic: int = 0
    peak_computes_per_second: int = 0
    cache_info: dict[str, int] = field(default_factory=dict)
    oldest_served_seconds: dict[str, float] = field(default_factory=dict)
    staleness_violations: int = 0
    calls_in_panic: int = 0
    wrong_served: float = 0.0
    """Share of all calls served a value the truth had moved past."""
    wrong_served_in_calm: float = 0.0
    """The same share among calls made while the status was not panic."""
    wrong_served_in_panic: float = 0.0
    """The same share among calls made during panic."""
    caller_wait_seconds: dict[str, float] = field(default_factory=dict)
    """How long callers waited for their value (virtual seconds): p50, p99, max."""
    transitions: list[dict[str, Any]] = field(default_factory=list)
    computes_per_second: list[int] = field(default_factory=list)
    panic_ratio_per_second: list[float] = field(default_factory=list)
    mode_per_second: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The result without its per-second series."""
        data = asdict(self)
        for series in ("computes_per_second", "panic_ratio_per_second", "mode_per_second"):
            data.pop(series)
        return data


class _RecordingBreaker(VIXCircuitBreaker):
    """The real breaker, remembering the TTL it decided last (the simulation's one request)."""

    last_ttl = 0.0

    def observe(self, status: VixStatus, base_ttl: float, now: float | None = None) -> float:
        self.last_ttl = ttl = VIXCircuitBreaker.observe(self, status, base_ttl, now)
        return ttl


def simulate(
    scenario: Scenario, strategy: str, progress: Callable[[float], None] | None = None
) -> StrategyResult:
    """Run *scenario* through *strategy*; *progress* is told the simulated seconds done.

    Raises:
        KeyboardInterrupt: Ctrl-C; the run stops between two steps, its calls dropped quietly.
    """
    check_strategy(strategy)
    loop = VirtualTimeLoop()
    # Millions of short-lived coroutines and futures, all freed by reference
    # counting: the cyclic collector would only scan them, for a third of the run.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with _ctrl_c_between_steps() as ctrl_c:
            return _until_interrupted(_Run(scenario, strategy, loop, progress, ctrl_c), loop)
    finally:
        loop.close()
        if collecting:
            gc.enable()


class _CtrlC:
    """Whether Ctrl-C was pressed during a run: the run stops at its next step."""

    def __init__(self) -> None:
        self.pressed = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.pressed:  # pressed again: the run did not stop, stop it where it is
            raise KeyboardInterrupt
        self.pressed = True


@contextlib.contextmanager
def _ctrl_c_between_steps() -> Iterator[_CtrlC]:
    """Ctrl-C noted, not raised, while a run goes on (in the main thread, under Python's own
    handler): raised wherever the run is, it lands in the middle of a call being made, and
    the call, dropped half made, warns that it was never awaited."""
    ctrl_c = _CtrlC()
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield ctrl_c
        return
    signal.signal(signal.SIGINT, ctrl_c)
    try:
        yield ctrl_c
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _until_interrupted(run: _Run, loop: VirtualTimeLoop) -> StrategyResult:
    """*run*'s result; on Ctrl-C, its calls dropped unfinished, quietly, and KeyboardInterrupt raised.

    Dropped, the calls still waiting on the backend are closed, and a pending task is
    reported destroyed: noise about a run its user stopped. A KeyboardInterrupt raised
    inside the run (not through ``_ctrl_c_between_steps``) may also leave a call made and
    never started.
    """
    try:
        return run.run()
    except KeyboardInterrupt as interrupt:
        loop.set_exception_handler(lambda loop, context: None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            traceback.clear_frames(interrupt.__traceback__)  # the calls being made when it landed
            del run
            loop.close()  # the calls its timers hold
            gc.collect()
        raise


class _Run:
    def __init__(
        self,
        scenario: Scenario,
        strategy: str,
        loop: VirtualTimeLoop,
        progress: Callable[[float], None] | None,
        ctrl_c: _CtrlC | None = None,
    ) -> None:
        self.scenario, self.loop, self.progress = scenario, loop, progress
        self.ctrl_c = ctrl_c or _CtrlC()
        self.result = StrategyResult(strategy)
        self.truth = Truth(scenario)
        self.wrong = [0, 0]  # calls served a moved value: in calm, in panic
        fixed_ttl = check_strategy(strategy)
        base_ttl = scenario.ttl if fixed_ttl is None else fixed_ttl
        if fixed_ttl is not None:
            policy = _fixed_policy(fixed_ttl)
        elif strategy == "bypass":
            policy = _NAIVE_POLICY
        elif strategy.endswith("+learned"):
            policy = TTLPolicy.learned()
        else:
            policy = None
        self.breaker = _RecordingBreaker(
            name=strategy,
            window_seconds=scenario.window_seconds,
            bucket_seconds=scenario.bucket_seconds,
            min_samples=scenario.min_samples,
            thresholds=scenario.thresholds,
            policy=policy,
            clock=loop.time,
        )
        self.breaker.subscribe(self._transition)
        seconds = math.ceil(scenario.duration) + 1
        self.computes_per_second = [0] * (seconds + math.ceil(scenario.latency) + 1)
        self.status = "normal"
        self.tick = 0
        self.latency_ticks = scenario.latency_steps
        self.pending: dict[int, list[asyncio.Future[None]]] = {}
        # Calls this driver runs itself that wait on the backend, resumed at
        # the step their computation ends (no round trip through the loop).
        self.last_wait: asyncio.Future[None] | None = None
        self.resumes: dict[int, list[tuple[Any, float, str, int]]] = {}
        # Values may be served past their TTL by this much, on purpose (stale-while-revalidate).
        self.allowance = SWR_SECONDS if strategy.endswith("+swr") else 0.0
        self.waits: Counter[int] = Counter()  # callers by how many steps they waited
        self.oldest: dict[str, float] = {}
        coalesce = strategy.startswith(("breaker+coalesce", FIXED))
        options: dict[str, Any] = {
            # getattr(self, "status", key): the status in force, read in C, not a Python frame.
            "status": functools.partial(getattr, self, "status"),
            "breaker": self.breaker,  # a fleet judges by one window, as with a RedisWindow
            "coalesce": coalesce,
            "stale_while_revalidate": SWR_SECONDS if strategy.endswith("+swr") else 0,
            "early_refresh": EARLY_BETA if strategy.endswith("+early") else 0,
            "clock": loop.time,
        }
        if scenario.processes == 1:
            self.processes = [
                vix_cached(base_ttl, maxsize=max(4096, 2 * scenario.keys), **options)(self._backend)
            ]
        else:
            # The fleet's store: one aiocache memory cache, leases and all, as one Redis would be.
            from aiocache import SimpleMemoryCache  # noqa: PLC0415 - the aiocache extra, for fleets only

            store = SimpleMemoryCache()
            self.processes = [
                vix_cached(base_ttl, cache=store, namespace="odds", **options)(self._backend)
                for _ in range(scenario.processes)
            ]

    async def _backend(self, key: int) -> _Value:
        """The backend: one computation, ``latency`` long, of the key's true value as it begins."""
        version, moved_at = self.truth.version(key, self.loop.time())
        self.result.computes += 1
        if self.status == "panic":
            self.result.computes_in_panic += 1
        self.computes_per_second[int(self.loop.time())] += 1
        if self.latency_ticks:
            # Every computation started in this step ends in the same later step. Each
            # waits on a future of its own: asyncio lets one awaiter block on a future.
            done: asyncio.Future[None] = self.loop.create_future()
            self.pending.setdefault(self.tick + self.latency_ticks, []).append(done)
            self.last_wait = done
            await done
        return _Value(key, version, self.loop.time(), moved_at)

    def run(self) -> StrategyResult:
        scenario, loop = self.scenario, self.loop
        ticks = math.ceil(scenario.duration / scenario.step)
        finished = loop.create_future()
        rng = random.Random(scenario.seed)
        per_second = round(1 / scenario.step)
        carry = 0.0

        def tick(index: int) -> None:
            if self.ctrl_c.pressed:  # between two steps: no call is half made
                finished.set_result(None)
                return
            try:
                step(index)
            except Exception as exc:  # end the run: the loop would only log it (Ctrl-C stops it anyway)
                finished.set_exception(exc)

        def step(index: int) -> None:
            nonlocal carry
            self.tick = index
            self._end_computations(index)
            now = index * scenario.step
            self.status = scenario.status_at(now)
            if index % per_second == 0:
                self._sample(now)
            carry += scenario.rate * scenario.step
            arrivals = int(carry)
            carry -= arrivals
            self._arrive(arrivals, rng)
            if index + 1 < ticks:
                loop.call_at((index + 1) * scenario.step, tick, index + 1)
            else:  # let the last computations land
                loop.call_at(now + scenario.latency + 2 * scenario.step, self._drain, finished)

        loop.call_at(0.0, tick, 0)
        loop.run_until_complete(finished)
        if self.ctrl_c.pressed:
            raise KeyboardInterrupt
        result = self.result
        infos = [process.cache_info().counts for process in self.processes]
        result.cache_info = {field: sum(info[field] for info in infos) for field in infos[0]}
        result.oldest_served_seconds = {
            s: round(self.oldest.get(s, 0.0), 6) for s in ("normal", "warning", "panic")
        }
        result.computes_per_second = self.computes_per_second[: math.ceil(scenario.duration)]
        result.peak_computes_per_second = max(result.computes_per_second, default=0)
        result.caller_wait_seconds = self._wait_quantiles()
        calm_calls = result.requests - result.calls_in_panic
        result.wrong_served = round(share(sum(self.wrong), result.requests), 6)
        result.wrong_served_in_calm = round(share(self.wrong[0], calm_calls), 6)
        result.wrong_served_in_panic = round(share(self.wrong[1], result.calls_in_panic), 6)
        return result

    def _wait_quantiles(self) -> dict[str, float]:
        """p50, p99 and max of how long callers waited, from the count of callers per step waited."""
        total, seen, found = sum(self.waits.values()), 0, {}
        for steps in sorted(self.waits):
            seen += self.waits[steps]
            for name, share_ in (("p50", 0.50), ("p99", 0.99)):
                if name not in found and seen >= share_ * total:
                    found[name] = round(steps * self.scenario.step, 6)
        found["max"] = round(max(self.waits, default=0) * self.scenario.step, 6)
        return {"p50": found.get("p50", 0.0), "p99": found.get("p99", 0.0), "max": found["max"]}

    def _end_computations(self, index: int) -> None:
        for done in self.pending.pop(index, ()):
            done.set_result(None)
        for call, ttl, status, issued in self.resumes.pop(index, ()):
            self._resume(call, ttl, status, issued)

    def _drain(self, finished: asyncio.Future[None]) -> None:
        while self.pending or self.resumes:
            self._end_computations(min([*self.pending, *self.resumes]))
        self.loop.call_soon(finished.set_result, None)

    def _arrive(self, arrivals: int, rng: random.Random) -> None:
        """Issue this step's requests: each a real call, run until it waits on the backend.

        Most calls are hits that finish on their first step, without any
        round trip through the loop; a run of them served the same entry under
        the same TTL is judged once (same value, same moment, same verdict).
        """
        breaker, status, served_now, tick = self.breaker, self.status, self._served, self.tick
        hot, cold, draw = self.scenario.hot_share, self.scenario.keys, rng.random
        processes, fleet = self.processes, len(self.processes)
        first = self.result.requests
        self.result.requests += arrivals
        if status == "panic":
            self.result.calls_in_panic += arrivals
        last, last_ttl, repeats = None, 0.0, 0
        for n in range(arrivals):
            r = draw()  # one draw: the hot key below hot_share, a cold key above
            price = processes[(first + n) % fleet]  # the load balancer: round robin
            call = price(0 if r < hot else 1 + int((r - hot) / (1 - hot) * cold))
            try:
                waiting = call.send(None)
            except StopIteration as served:
                if served.value is last and breaker.last_ttl == last_ttl:
                    repeats += 1
                    continue
                if repeats:
                    served_now(last, last_ttl, status, tick, repeats)  # type: ignore[arg-type]
                last, last_ttl, repeats = served.value, breaker.last_ttl, 1
                continue
            self._wait(call, waiting, breaker.last_ttl, status, tick)
        if repeats:
            served_now(last, last_ttl, status, tick, repeats)  # type: ignore[arg-type]

    def _resume(self, call: Any, ttl: float, status: str, issued: int) -> None:
        """Run a waiting *call* on; note what it served when it is done."""
        try:
            waiting = call.send(None)
        except StopIteration as served:
            self._served(served.value, ttl, status, issued)
            return
        self._wait(call, waiting, ttl, status, issued)

    def _wait(self, call: Any, waiting: Any, ttl: float, status: str, issued: int) -> None:
        # A call yields the future it waits on (a driver need not touch it: every
        # await of a future marks it anew).
        if waiting is self.last_wait:  # the backend: resumed at the step it ends
            self.resumes.setdefault(self.tick + self.latency_ticks, []).append((call, ttl, status, issued))
        else:  # a shared computation, or anything else asyncio schedules
            waiting.add_done_callback(lambda _: self._resume(call, ttl, status, issued))

    def _served(self, value: _Value, ttl: float, status: str, issued: int, calls: int = 1) -> None:
        """Judge *calls* calls issued at step *issued*, served *value* now under *ttl*."""
        self.waits[self.tick - issued] += calls
        now = self.loop.time()
        if now >= value.moved_at:
            self.wrong[status == "panic"] += calls
        age = now - value.produced_at
        if age > self.oldest.get(status, -1.0):
            self.oldest[status] = age
        if ttl == 0:  # a bypass: served a value whose computation ended before the call began?
            if value.produced_at < issued * self.scenario.step:
                self.result.staleness_violations += calls
        elif age > 0 and age >= ttl + self.allowance:  # served past its TTL and what it may be allowed
            self.result.staleness_violations += calls

    def _sample(self, now: float) -> None:
        result = self.result
        result.panic_ratio_per_second.append(round(self.breaker.panic_ratio, 4))
        result.mode_per_second.append(self.breaker.mode.value)
        if self.progress is not None and int(now) % 60 == 0:
            self.progress(now)

    def _transition(self, hop: Transition) -> None:
        self.result.transitions.append(
            {
                "at_seconds": round(hop.at, 3),
                "old": hop.old.value,
                "new": hop.new.value,
                # Unrounded: rounded, a ratio just below its exit threshold (0.59996) reads as it.
                "panic_ratio": hop.panic_ratio,
                "trigger": hop.trigger,
            }
        )


def run(
    scenario: Scenario, strategies: Sequence[str], *, workers: int = 3, progress: bool = False
) -> dict[str, StrategyResult]:
    """Run *strategies* on *scenario*, each in a process of its own when *workers* > 1.

    Raises:
        ImportError: the ``sim`` extra (tqdm, the progress bar) is not installed.
    """
    try:
        from tqdm import tqdm  # noqa: PLC0415 - the sim extra: only runs need it, not `import vix_ttl.sim.cli`
    except ImportError as exc:
        raise missing_extra("vix_ttl.sim.simulate.run", "sim", exc) from exc
    bar = tqdm(
        total=round(scenario.duration) * len(strategies),
        unit="sim-s",
        disable=not progress,
        desc="simulating",
        file=sys.stderr,
        leave=False,
    )
    done: dict[str, float] = dict.fromkeys(strategies, 0.0)

    def advance(strategy: str, seconds: float) -> None:
        bar.update(round(seconds - done[strategy]))
        done[strategy] = seconds

    try:
        if workers == 1:
            return {s: simulate(scenario, s, lambda t, s=s: advance(s, t)) for s in strategies}  # type: ignore[misc]
        others = set(multiprocessing.active_children())
        updates: multiprocessing.Queue[tuple[str, float]] = multiprocessing.Queue()
        try:
            with ProcessPoolExecutor(
                max_workers=min(workers, len(strategies)), initializer=_worker, initargs=(updates,)
            ) as pool:
                futures = {s: pool.submit(_simulate_quietly, scenario, s) for s in strategies}
                try:
                    while not all(f.done() for f in futures.values()):
                        with contextlib.suppress(queue.Empty):
                            advance(*updates.get(timeout=0.2))
                except BaseException:  # Ctrl-C: the workers ignore it, and end here
                    pool.shutdown(wait=False, cancel_futures=True)
                    for worker in set(multiprocessing.active_children()) - others:
                        worker.terminate()
                    raise
                return {s: f.result() for s, f in futures.items()}
        finally:
            updates.close()
    finally:
        bar.close()


_PROGRESS: dict[str, Any] = {}
"""A worker process's queue of progress reports (``strategy, simulated seconds``), set as it starts."""


def _worker(updates: multiprocessing.Queue[tuple[str, float]]) -> None:
    """A worker process starts: Ctrl-C at a terminal reaches it too, but the command's process
    ends the run and ends it (a worker that took the Ctrl-C would print its traceback, or a
    half-made call's warning); its transitions are in its results, not in the log."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("vix_ttl").setLevel(logging.CRITICAL + 1)
    updates.cancel_join_thread()  # progress left unread when the run ends is not waited on
    _PROGRESS["updates"] = updates


def _simulate_quietly(scenario: Scenario, strategy: str) -> StrategyResult:
    """A strategy run in a worker process, its progress reported to the command's."""
    updates = _PROGRESS["updates"]
    return simulate(scenario, strategy, lambda seconds: updates.put((strategy, seconds)))


def share(part: int, whole: int) -> float:
    """*part* / *whole*, 0 when *whole* is 0."""
    return part / whole if whole else 0.0
