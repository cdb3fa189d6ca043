"""pytest plugin that runs aiocache 0.12.3's own tests through vix_ttl's aiocache drop-ins.

``run.py`` loads it with ``-p vix_suite_plugin`` into a pytest session over an
extracted copy of aiocache's ``tests/`` (left unedited). For the whole session it:

- points the caches the suite builds without a port (``Cache(Cache.REDIS)``,
  ``RedisCache()``, ...) at ``127.0.0.1:$REDIS_PORT`` (database
  ``$AIOCACHE_SUITE_REDIS_DB``, default 15: the suite runs ``FLUSHDB``) and
  ``127.0.0.1:$MEMCACHED_PORT``, by changing the ``port``/``db`` defaults of
  aiocache's backend constructors (explicit arguments, as in ``from_url``, win);
- wraps every serializer a cache is given (at construction or by
  ``cache.serializer = ...``) in ``VixSerializer`` (pickle-based ones get
  ``secret=``);
- with ``--vix-plugin`` (the default), keeps a ``VixPlugin()`` in every real
  cache's plugins (at construction and on ``cache.plugins = [...]``);
- imports the two ``test_decorators`` modules with ``aiocache.cached`` bound to
  ``vix_ttl.aiocache.cached``, so their ``cached`` (and the parametrize values
  naming it) is vix_ttl's; tests outside their ``TestCached`` classes
  (``cached_stampede`` / ``multi_cached`` tests) see aiocache's own again;
- gives each test a fresh breaker registry, bounds each test phase in time, and
  writes every outcome to the JSON file given by ``--vix-report``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import signal
import types
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import aiocache
import pytest
from aiocache.backends.memcached import MemcachedBackend
from aiocache.backends.redis import RedisBackend
from aiocache.base import BaseCache
from aiocache.decorators import cached as aiocache_cached
from aiocache.serializers import (
    BaseSerializer,
    JsonSerializer,
    MsgPackSerializer,
    NullSerializer,
    StringSerializer,
)

import vix_ttl.aiocache
from vix_ttl.testing import forget_breakers

SECRET = "aiocache-suite-secret"
"""The ``secret=`` given to ``VixSerializer`` around pickle-based serializers."""

DECORATOR_MODULES = ("tests/ut/test_decorators.py", "tests/acceptance/test_decorators.py")
REBOUND_CLASS = "TestCached"
TAKES_SECRET = "secret" in inspect.signature(vix_ttl.aiocache.VixSerializer).parameters
# The serializers vix_ttl lets read a shared store without a secret; any other needs one.
KNOWN_SAFE = (NullSerializer, StringSerializer, JsonSerializer, MsgPackSerializer)


class PhaseTimeoutError(Exception):
    """A test phase ran longer than ``--vix-phase-timeout`` seconds."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vix_suite", "aiocache's suite through vix_ttl")
    group.addoption(
        "--vix-plugin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep a VixPlugin() in every cache's plugins (default: yes)",
    )
    group.addoption(
        "--vix-baseline",
        action="store_true",
        help="aiocache alone: no VixSerializer, no VixPlugin, aiocache's own cached (servers still patched)",
    )
    group.addoption("--vix-report", default=None, help="write every test's outcome to this JSON file")
    group.addoption(
        "--vix-phase-timeout", type=float, default=30.0, help="seconds per setup/call/teardown (default 30)"
    )


# -- the patches, applied for the session --------------------------------------------


def wrap_serializer(serializer: Any) -> Any:
    """``serializer`` inside a ``VixSerializer`` (anything not a serializer, or already one: as is)."""
    if not isinstance(serializer, BaseSerializer) or isinstance(serializer, vix_ttl.aiocache.VixSerializer):
        return serializer
    kwargs: dict[str, Any] = {}
    if TAKES_SECRET and type(serializer) not in KNOWN_SAFE:  # pickle, and the suite's own classes
        kwargs["secret"] = SECRET
    return vix_ttl.aiocache.VixSerializer(serializer, **kwargs)


def with_vix_plugin(plugins: Any) -> Any:
    plugins = list(plugins or [])
    if not any(isinstance(plugin, vix_ttl.aiocache.VixPlugin) for plugin in plugins):
        plugins.append(vix_ttl.aiocache.VixPlugin())
    return plugins


@contextmanager
def replaced_default(function: Callable[..., Any], name: str, value: Any) -> Iterator[None]:
    """*function*'s parameter *name* defaults to *value* for the duration."""
    params = [
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    defaults = function.__defaults__ or ()
    with_default = params[len(params) - len(defaults) :]
    if name not in with_default:
        raise RuntimeError(f"{function.__qualname__} has no parameter {name!r} with a default")
    original = defaults
    patched = list(defaults)
    patched[with_default.index(name)] = value
    function.__defaults__ = tuple(patched)
    try:
        yield
    finally:
        function.__defaults__ = original


@contextmanager
def replaced_property(cls: type, name: str, wrap: Callable[[Any], Any]) -> Iterator[None]:
    """Values assigned to ``cls.name`` (a property with a setter) go through *wrap* first."""
    original = cls.__dict__[name]

    def setter(self: Any, value: Any) -> None:
        original.fset(self, wrap(value))

    setattr(cls, name, property(original.fget, setter, original.fdel, original.__doc__))
    try:
        yield
    finally:
        setattr(cls, name, original)


@contextmanager
def alarm(seconds: float, what: str) -> Iterator[None]:
    """Raise ``PhaseTimeoutError`` in the block once *seconds* have passed (SIGALRM)."""
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise PhaseTimeoutError(f"{what} took longer than {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def crash_message(report: Any) -> str:
    """The one-line reason of a failed or skipped report."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        return str(longrepr[2])
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0] if crash.message else ""
    lines = str(longrepr).strip().splitlines()
    return lines[-1] if lines else ""


class VixSuite:
    """The session's patches and outcome records; registered as a plugin by ``pytest_configure``."""

    def __init__(self, config: pytest.Config) -> None:
        self.baseline: bool = config.getoption("vix_baseline")
        self.vix_plugin: bool = config.getoption("vix_plugin") and not self.baseline
        self.report_path: str | None = config.getoption("vix_report")
        self.phase_timeout: float = config.getoption("vix_phase_timeout")
        self.redis_port = int(os.environ["REDIS_PORT"])
        self.memcached_port = int(os.environ["MEMCACHED_PORT"])
        self.redis_db = int(os.environ.get("AIOCACHE_SUITE_REDIS_DB", "15"))
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.tracebacks: dict[str, str] = {}
        self._patches = ExitStack()
        self._patches.enter_context(replaced_default(RedisBackend.__init__, "port", self.redis_port))
        self._patches.enter_context(replaced_default(RedisBackend.__init__, "db", self.redis_db))
        self._patches.enter_context(replaced_default(MemcachedBackend.__init__, "port", self.memcached_port))
        if not self.baseline:
            self._patches.enter_context(replaced_property(BaseCache, "serializer", wrap_serializer))
        if self.vix_plugin:
            self._patches.enter_context(replaced_property(BaseCache, "plugins", with_vix_plugin))

    def pytest_unconfigure(self) -> None:
        self._patches.close()

    def pytest_report_header(self) -> list[str]:
        servers = (
            f"vix_suite: Redis 127.0.0.1:{self.redis_port} db {self.redis_db}, "
            f"memcached 127.0.0.1:{self.memcached_port}"
        )
        if self.baseline:
            return [servers, "vix_suite: BASELINE: aiocache alone, vix_ttl is not involved"]
        secret = "yes" if TAKES_SECRET else "NO: this VixSerializer takes no secret= yet"
        return [
            servers,
            f"vix_suite: serializers in VixSerializer (pickle secret: {secret}); "
            f"VixPlugin in caches' plugins: {'yes' if self.vix_plugin else 'no'}",
            f"vix_suite: cached is vix_ttl.aiocache.cached in {REBOUND_CLASS} "
            f"of {', '.join(DECORATOR_MODULES)}",
        ]

    # -- collection ----------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Generator[None, Any, Any]:
        """Import the decorator test modules with ``aiocache.cached`` being vix_ttl's."""
        if self.baseline or not (
            isinstance(collector, pytest.Module) and collector.nodeid in DECORATOR_MODULES
        ):
            return (yield)
        aiocache.cached = vix_ttl.aiocache.cached
        try:
            return (yield)
        finally:
            aiocache.cached = aiocache_cached

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Refuse to run the decorator tests against aiocache's own ``cached``."""
        if self.baseline:
            return
        for item in items:
            if item.nodeid.split("::")[0] not in DECORATOR_MODULES:
                continue
            if getattr(getattr(item, "module", None), "cached", None) is not vix_ttl.aiocache.cached:
                raise pytest.UsageError(f"{item.nodeid}: cached is not vix_ttl.aiocache.cached")

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:  # a module that does not import fails under its path
            self.record(report.nodeid or "<collection>", "collect", "failed", report)

    # -- running -------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self) -> Generator[None, None, None]:
        with alarm(self.phase_timeout, "setup"):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self) -> Generator[None, None, None]:
        with alarm(self.phase_timeout, "call"):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self) -> Generator[None, None, None]:
        with alarm(self.phase_timeout, "teardown"):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.failed and call.excinfo is not None:  # a traceback for run.py, whatever --tb says
            self.tracebacks.setdefault(item.nodeid, str(item._repr_failure_py(call.excinfo, style="short")))
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.record(report.nodeid, report.when, report.outcome, report)

    def record(self, nodeid: str, when: str, outcome: str, report: Any) -> None:
        entry = self.outcomes.setdefault(nodeid, {"outcome": "passed", "phases": {}})
        entry["phases"][when] = outcome
        if outcome == "failed":
            if entry["outcome"] not in ("failed", "error"):
                longrepr = self.tracebacks.get(nodeid) or str(report.longrepr)
                entry.update(message=crash_message(report), when=when, longrepr=longrepr)
            entry["outcome"] = "failed" if entry.get("when") == "call" else "error"
        elif outcome == "skipped" and entry["outcome"] == "passed":
            entry.update(outcome="skipped", message=crash_message(report))

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        if self.report_path:
            data = {
                "exitstatus": int(exitstatus),
                "baseline": self.baseline,
                "vix_plugin": self.vix_plugin,
                "takes_secret": TAKES_SECRET,
                "tests": self.outcomes,
            }
            Path(self.report_path).write_text(json.dumps(data, indent=1))


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(VixSuite(config), "vix_suite")


@pytest.fixture(autouse=True)
def _vix_suite_isolation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh breaker registry per test; aiocache's own ``cached`` outside ``TestCached``."""
    if request.node.nodeid.split("::")[0] in DECORATOR_MODULES and (
        request.cls is None or request.cls.__name__ != REBOUND_CLASS
    ):
        module: types.ModuleType = request.module
        monkeypatch.setattr(module, "cached", aiocache_cached)
    forget_breakers()
    yield
    forget_breakers()
