"""The in-process store: a cachetools cache, or any MutableMapping.

Entries are ``Entry(value, stored_at, ttl, delta, finished)`` tuples aged on the breaker's
clock unless ``clock=`` says otherwise (so one ``FakeClock`` drives a whole test), read
and written under one lock. Its reads are the engine's inlined hit path
(``vix_ttl._cache.engine``); ``read`` is the same rule, written plainly.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any

import cachetools
from cachetools.keys import hashkey

from vix_ttl._cache.api import Entry, Found, Outcome, Written, fresh
from vix_ttl._cache.options import Function
from vix_ttl._faults import FaultLog

__all__ = ["MappingStore"]

_MISS, _STALE, _HIT, _ERROR = Outcome.MISS, Outcome.STALE, Outcome.HIT, Outcome.ERROR


class MappingStore:
    """A mapping behind a lock, as a ``Store``.

    ``None`` makes a store of the function's own: a FIFO of ``maxsize`` entries (with TTLs
    this short, the oldest entry written is the next to go stale anyway, and a FIFO hit
    does not reorder, as an LRU's does). A mapping of the user's may be shared by other
    functions: its keys carry the function's namespace (``prefix``).
    """

    def __init__(self, cache: MutableMapping[Any, Any] | None, function: Function) -> None:
        options = function.options
        self.cache: MutableMapping[Any, Any] = (
            cachetools.FIFOCache(options.maxsize) if cache is None else cache
        )
        self.prefix = None if cache is None else function.namespace
        # Functions sharing a mapping share its lock: a cachetools cache is not thread-safe.
        self.lock = threading.Lock() if cache is None else _lock_of(self, cache)
        self.outdated: dict[Any, int] = {}
        """Keys whose entry a value computed later replaces, but the mapping refused to write
        or drop: never served (a value older than one served must not come back)."""
        self.clock: Callable[[], float] = options.clock or function.breaker.clock
        self.faults = FaultLog(function.name, clock=self.clock)
        self._function = function
        self._user_key = options.key

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """What ``key=`` returns, else the arguments (``self`` included); in a mapping of the
        user's, under this function's namespace. A key that cannot be hashed is the caller's error."""
        if self._user_key is not None:
            key = self._function.call("key", self._user_key, args, kwargs)
        else:
            key = hashkey(*args, **kwargs) if kwargs else args
        return self.hashable(key if self.prefix is None else (self.prefix, key))

    def hashable(self, key: Any) -> Any:
        """*key*, or a clear error when it cannot be one."""
        try:
            hash(key)
        except TypeError as exc:
            raise TypeError(
                self._function.error(
                    f"the cache key must be hashable ({exc}); pass key= to build one from these arguments"
                )
            ) from None
        return key

    async def read(self, key: Any, ttl: float, budget: object = None) -> tuple[Outcome, Found | None]:
        with self.lock:
            try:
                entry = self.cache[key]
            except KeyError:
                return _MISS, None
            except Exception as exc:
                self.faults.failed("get", exc)
                return _ERROR, None
        if entry.__class__ is not Entry or key in self.outdated:  # not vix_ttl's, or outdated
            return _MISS, None
        age = self.clock() - entry.stored_at
        found = Found(entry.value, entry.stored_at, age, min(entry.ttl, ttl), entry.delta)
        if fresh(age, entry.ttl, ttl):
            return _HIT, found
        return _STALE, found if age >= 0 else None

    async def write(self, key: Any, value: Any, ttl: float, written: Written, budget: object = None) -> bool:
        """Never over a value whose computation ended later: two computations of one key may end
        in one order and write in the other (threads, or coalescing off), and a process never
        serves a value older than one it served. A store that fails to write drops the entry
        the value replaces, if it can still drop."""
        entry = Entry(value, written.ended, ttl, written.delta, written.finished) if ttl else None
        with self.lock:
            try:
                held = self.cache.get(key)
                if held.__class__ is Entry and held.finished > written.finished:
                    pass  # a newer value is there already
                elif entry is None:
                    self.cache.pop(key, None)
                else:
                    self.cache[key] = entry
            except Exception as exc:
                self.faults.failed("set", exc)
                try:  # what it replaces must not be served after it
                    self.cache.pop(key, None)
                except Exception:
                    self.outdated[key] = written.finished
                return False
            self.outdated.pop(key, None)
        # It read the store too: a burst of failed reads ends here (the hit path never checks).
        self.faults.recovered("get")
        self.faults.recovered("set")
        return True

    async def delete(self, key: Any) -> bool:
        with self.lock:
            try:
                self.outdated.pop(key, None)
                return self.cache.pop(key, None) is not None
            except Exception as exc:  # a failing store: nothing to drop that could be served
                self.faults.failed("delete", exc)
                return False

    async def clear(self) -> None:
        """All of its own store, or its keys in a shared mapping."""
        with self.lock:
            try:
                if self.prefix is None:
                    self.cache.clear()
                else:
                    for key in [k for k in self.cache if isinstance(k, tuple) and k[:1] == (self.prefix,)]:
                        del self.cache[key]
            except Exception as exc:  # fail open: the entries expire on their own
                self.faults.failed("clear", exc)

    def shared(
        self, key: Any, run: Callable[[], Coroutine[Any, Any, Any]], ttl: float, budget: object
    ) -> Callable[[], Coroutine[Any, Any, Any]]:
        return run  # nobody outside this process reads it

    def budget(self) -> None:
        return None  # memory does not hang

    def size(self) -> tuple[int | None, int | None]:
        cache = self.cache
        if isinstance(cache, cachetools.Cache):  # sizes as cachetools weighs them (getsizeof)
            return int(cache.maxsize), int(cache.currsize)
        return None, len(cache)


_locks: dict[int, list[Any]] = {}
"""id(mapping) -> [its lock, how many stores use it]: one lock per mapping while a store of
it lives (each holds the mapping, so its id is not reused meanwhile)."""
_locks_lock = threading.RLock()  # re-entrant: a finalizer may run (GC) while it is held


def _lock_of(store: MappingStore, mapping: object) -> threading.Lock:
    with _locks_lock:
        held = _locks.setdefault(id(mapping), [threading.Lock(), 0])
        held[1] += 1
    weakref.finalize(store, _release, id(mapping))
    lock: threading.Lock = held[0]
    return lock


def _release(mapping_id: int) -> None:
    with _locks_lock:
        held = _locks[mapping_id]
        held[1] -= 1
        if not held[1]:
            del _locks[mapping_id]
