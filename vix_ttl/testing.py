"""Helpers for testing code that uses vix_ttl, without sleeping.

``FakeClock`` drives any ``clock=`` parameter. The pytest plugin that ships
with the package (``vix_ttl.pytest_plugin``, registered by entry point) adds
the fixtures ``vix_clock`` and ``vix_breaker``. ``StoreConformance`` is the
behaviour every store of ``@vix_cached`` has, as tests a store of yours runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from vix_ttl._cache.api import CacheInfo
from vix_ttl._checks import check_seconds, check_time
from vix_ttl.registry import _clear as _clear_registry

__all__ = ["FakeClock", "StoreConformance", "forget_breakers"]


class FakeClock:
    """A manual clock: call it for the time, move it with ``advance`` or ``set``.

    Like ``time.monotonic`` it never goes back. It is thread-safe.
    """

    __slots__ = ("_lock", "_now")

    def __init__(self, start: float = 0.0) -> None:
        self._now = check_time("FakeClock start", start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by *seconds* (>= 0) and return the new time."""
        seconds = check_seconds("FakeClock.advance seconds", seconds)
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, t: float) -> float:
        """Jump to time *t*, which must not be earlier than now; return it."""
        t = check_time("FakeClock.set t", t)
        with self._lock:
            if t < self._now:
                raise ValueError(f"FakeClock.set: time cannot go back (now {self._now!r}, asked {t!r})")
            self._now = t
            return t

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"


def forget_breakers() -> None:
    """Empty the breaker registry, so each test gets fresh breakers by name.

    Breakers already handed out keep working; ``get_breaker`` makes new ones.
    """
    _clear_registry()


class StoreConformance:
    """What every store of ``@vix_cached`` does, as tests to run against a store of yours.

    Subclass it in your test suite (as ``TestMyStore``), with a pytest fixture ``new_cache``
    returning a function that makes a fresh cache object, the one your store adapter
    accepts as ``cache=`` (it is called inside each test's event loop, and closed with its
    ``aclose`` / ``close`` afterwards if it has one). vix_ttl runs this suite against every
    store it ships. Each test decorates functions under a namespace of its own, so runs
    sharing a server do not meet; no test sleeps (entries age on a ``FakeClock``).
    """

    kinds: tuple[str, ...] = ("async",)
    """The functions the store serves: ``"sync"``, ``"async"`` or both."""
    clears: bool = True
    """Whether ``cache_clear()`` can drop a function's entries (memcached cannot list keys:
    it raises ``NotImplementedError``)."""

    def test_a_value_comes_back_as_it_was_stored(self, new_cache: Callable[[], Any]) -> None:
        values = [(1, "a"), {1: b"x", "k": [2.5, None]}, None, "é", -3, [1, (2,)], True]

        async def check(f: _Call, info: Callable[[], CacheInfo]) -> None:
            for n, value in enumerate(values):
                assert await f(n, value) == value
                got = await f(n, "other")  # a hit: the argument after the key is not read
                assert got == value and type(got) is type(value), (value, got)
            assert info().hits == len(values)

        self._each(new_cache, check, key=lambda n, value: n)

    def test_an_entry_is_served_for_its_ttl_and_not_after(self, new_cache: Callable[[], Any]) -> None:
        async def check(f: _Call, info: Callable[[], CacheInfo]) -> None:
            first = await f(1)
            self.clock.advance(59)
            assert await f(1) == first
            self.clock.advance(1)
            assert await f(1) != first
            assert (info().hits, info().misses, info().stale) == (1, 1, 1)

        self._each(new_cache, check)

    def test_an_entry_is_served_for_the_ttl_decided_now_when_it_is_shorter(
        self, new_cache: Callable[[], Any]
    ) -> None:
        async def check(f: _Call, info: Callable[[], CacheInfo]) -> None:
            first = await f(1)  # stored for the NORMAL TTL, 60 s
            self.status = "warning"  # its TTL is 10 s: an entry 11 s old is too old now
            self.clock.advance(9)
            assert await f(1) == first
            self.clock.advance(2)
            assert await f(1) != first
            assert (info().hits, info().stale) == (1, 1)

        self._each(new_cache, check)

    def test_panic_bypasses_and_what_was_before_it_never_comes_back(
        self, new_cache: Callable[[], Any]
    ) -> None:
        async def check(f: _Call, info: Callable[[], CacheInfo]) -> None:
            before = await f(1)
            self.status = "panic"
            during = [await f(1), await f(1)]
            assert before not in during and during[0] != during[1]  # computed every time
            self.status = "normal"
            assert await f(1) == during[-1]  # the last value, written through: never `before`
            assert info().bypasses == 2

        self._each(new_cache, check)

    def test_invalidate_drops_one_entry(self, new_cache: Callable[[], Any]) -> None:
        async def check(f: _Call, info: Callable[[], CacheInfo]) -> None:
            one, two = await f(1), await f(2)
            assert await self._control(self.function.invalidate(1)) is True
            assert await self._control(self.function.invalidate(1)) is False
            assert await f(1) != one
            assert await f(2) == two

        self._each(new_cache, check)

    def test_functions_sharing_a_cache_keep_apart(self, new_cache: Callable[[], Any]) -> None:
        async def check(f: _Call, g: _Call) -> None:
            assert await f(1) != await g(1)
            if not self.clears:
                with _raises(NotImplementedError):
                    await self._control(self.function.cache_clear())
                return
            kept = await g(1)
            await self._control(self.function.cache_clear())  # f's entries only, and its counts
            assert self.function.cache_info().calls == 0
            assert await g(1) == kept
            await f(1)
            assert self.function.cache_info().misses == 1  # cleared: computed again

        self._each(new_cache, check, twins=True)

    def test_a_failed_computation_is_not_kept(self, new_cache: Callable[[], Any]) -> None:
        async def check(f: _Call, info: Callable[[], CacheInfo]) -> None:
            self.fail = True
            with _raises(LookupError):
                await f(1)
            self.fail = False
            assert await f(1) == await f(1)
            assert (info().misses, info().hits) == (2, 1)

        self._each(new_cache, check)

    def test_concurrent_callers_share_one_computation(self, new_cache: Callable[[], Any]) -> None:
        if "async" not in self.kinds:
            return  # threads: tests/test_coalesce.py covers the in-process store

        async def check(f: _Call, info: Callable[[], CacheInfo]) -> None:
            self.gate = asyncio.Event()
            calls = [asyncio.ensure_future(f(7)) for _ in range(20)]
            while self.function.in_flight(7) < 19:  # every call reaches the computation the first leads
                await asyncio.sleep(0)
            self.gate.set()
            assert len(set(await asyncio.gather(*calls))) == 1
            assert (info().misses, info().coalesced) == (1, 19)

        self._each(new_cache, check, only="async")

    # -- the set-up every test shares ---------------------------------------------------------

    clock: FakeClock
    status: str
    fail: bool
    gate: asyncio.Event | None
    function: Any
    kind: str

    def _each(
        self,
        new_cache: Callable[[], Any],
        check: Callable[..., Awaitable[None]],
        *,
        key: Callable[..., Any] | None = None,
        twins: bool = False,
        only: str | None = None,
    ) -> None:
        """Run *check* for each kind of function the store serves, each in an event loop of its
        own, over a fresh cache: with the function's call and ``cache_info``, or (*twins*) with
        two functions sharing the cache."""
        for kind in self.kinds if only is None else (only,):
            asyncio.run(self._one(new_cache, check, kind, key, twins))

    async def _one(
        self,
        new_cache: Callable[[], Any],
        check: Callable[..., Awaitable[None]],
        kind: str,
        key: Callable[..., Any] | None,
        twins: bool,
    ) -> None:
        from vix_ttl.breaker import VIXCircuitBreaker  # noqa: PLC0415 - testing imports the library lazily
        from vix_ttl.decorator import vix_cached  # noqa: PLC0415

        self.clock, self.status, self.fail, self.gate = FakeClock(1_000_000.0), "normal", False, None
        computed = itertools.count(1)
        cache = new_cache()
        run = secrets.token_hex(4)  # this test's namespace: runs sharing a server never meet
        decorated = []
        for name in ("f", "g") if twins else ("f",):
            breaker = VIXCircuitBreaker(name=f"conformance-{run}-{name}", min_samples=1000, clock=self.clock)
            decorate = vix_cached(
                60,
                warning_ttl=10,
                status=lambda *args: self.status,
                cache=cache,
                key=key,
                namespace=f"conformance-{run}-{name}",
                breaker=breaker,
                clock=self.clock,
            )
            if kind == "sync":

                def compute(*args: Any) -> Any:
                    if self.fail:
                        raise LookupError("the computation failed")
                    return args[1] if len(args) > 1 else f"{args[0]}#{next(computed)}"

                decorated.append(decorate(compute))
            else:

                async def compute_async(*args: Any) -> Any:
                    if self.gate is not None:
                        await self.gate.wait()
                    if self.fail:
                        raise LookupError("the computation failed")
                    return args[1] if len(args) > 1 else f"{args[0]}#{next(computed)}"

                decorated.append(decorate(compute_async))
        self.function, self.kind = decorated[0], kind
        calls = [self._awaiting(function) for function in decorated]
        try:
            await (check(*calls) if twins else check(calls[0], self.function.cache_info))
        finally:
            await _closed(cache)

    def _awaiting(self, function: Callable[..., Any]) -> _Call:
        """*function*'s calls, as coroutines the checks await, whatever its kind."""

        async def call(*args: Any) -> Any:
            return await self._control(function(*args))

        return call

    async def _control(self, result: Any) -> Any:
        """What a call (or ``invalidate``, ``cache_clear``) gave: a value for a plain function,
        an awaitable for a coroutine function, whatever the store."""
        if inspect.isawaitable(result) is not (self.kind == "async"):
            if inspect.iscoroutine(result):
                result.close()
            raise AssertionError(f"a {self.kind} function's call gave {result!r}")
        return await _settled(result)


_Call = Callable[..., Awaitable[Any]]


async def _settled(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


async def _closed(cache: Any) -> None:
    close = getattr(cache, "aclose", None) or getattr(cache, "close", None)
    if close is not None and not isinstance(cache, MutableMapping):
        await _settled(close())


@contextlib.contextmanager
def _raises(kind: type[BaseException]) -> Iterator[None]:
    try:
        yield
    except kind:
        return
    raise AssertionError(f"{kind.__name__} was not raised")
