"""vix_ttl logs as a library does: through ``logging``, as the application configures it.

The acceptance tests run a clean interpreter each: the suite's own logging (pytest's
handlers, a level a fixture set) must not be what makes them pass.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from tests.logs import captured_logs
from vix_ttl import VIXCircuitBreaker, vix_cached
from vix_ttl.testing import FakeClock

ROOT = Path(__file__).parent.parent

# NORMAL -> HIGH_VOLATILITY -> CIRCUIT_OPEN on one panic, back down when the window drains;
# a listener raises at every hop.
WALK = """
from vix_ttl import VIXCircuitBreaker
from vix_ttl.testing import FakeClock

clock = FakeClock()
breaker = VIXCircuitBreaker(name="odds", window_seconds=60, min_samples=0, clock=clock)

def broken(transition):
    raise RuntimeError("listener bug")

breaker.subscribe(broken)
breaker.record("panic")
assert breaker.mode == "circuit_open"
clock.advance(60)
assert breaker.mode == "normal"
"""

# A store that reads and refuses every write, as a replica would, for 20 calls.
REFUSED_WRITES = """
from collections.abc import MutableMapping
from vix_ttl import vix_cached

class Refusing(MutableMapping):
    refusing = True

    def __init__(self):
        self.data = {}

    def __getitem__(self, key):
        return self.data[key]

    def __setitem__(self, key, value):
        if self.refusing:
            raise OSError("store refuses writes")
        self.data[key] = value

    def __delitem__(self, key):
        del self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)

store = Refusing()

@vix_cached(60, status=lambda x: "normal", breaker=breaker, cache=store)
def price(x):
    return x

for x in range(20):
    assert price(x) == x
"""


def run(source: str) -> subprocess.CompletedProcess[str]:
    """*source* in a fresh interpreter importing this checkout's vix_ttl."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def events(lines: str) -> list[list[str]]:
    """Each line's level, logger and event, and its ``new_mode`` or ``operation`` field."""
    return [
        [
            word
            for word in shlex.split(line)
            if "=" not in word or word.startswith(("new_mode=", "operation="))
        ]
        for line in lines.splitlines()
    ]


def test_unconfigured_an_app_sees_nothing_on_stdout_and_warnings_and_above_on_stderr() -> None:
    result = run(f"import vix_ttl\n{WALK}")
    assert result.stdout == ""
    # Python's last-resort handler: WARNING and above, the message alone, one line each.
    assert events(result.stderr) == [
        ["breaker_mode_changed", "new_mode=high_volatility"],  # WARNING
        ["breaker_listener_failed", "new_mode=high_volatility"],
        ["breaker_mode_changed", "new_mode=circuit_open"],  # CRITICAL
        ["breaker_listener_failed", "new_mode=circuit_open"],
        ["breaker_mode_changed", "new_mode=high_volatility"],  # WARNING
        ["breaker_listener_failed", "new_mode=high_volatility"],
        # the mode change back to NORMAL is INFO: not shown
        ["breaker_listener_failed", "new_mode=normal"],
    ]


def test_at_warning_a_mode_change_keeps_its_level_and_a_fault_is_one_line_without_traceback() -> None:
    result = run(
        "import logging\n"
        'logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")\n'
        f"{WALK}{REFUSED_WRITES}"
    )
    assert result.stdout == ""
    assert events(result.stderr) == [
        ["WARNING", "vix_ttl.breaker", "breaker_mode_changed", "new_mode=high_volatility"],
        ["ERROR", "vix_ttl.breaker", "breaker_listener_failed", "new_mode=high_volatility"],
        ["CRITICAL", "vix_ttl.breaker", "breaker_mode_changed", "new_mode=circuit_open"],
        ["ERROR", "vix_ttl.breaker", "breaker_listener_failed", "new_mode=circuit_open"],
        ["WARNING", "vix_ttl.breaker", "breaker_mode_changed", "new_mode=high_volatility"],
        ["ERROR", "vix_ttl.breaker", "breaker_listener_failed", "new_mode=high_volatility"],
        # the recovery to NORMAL is INFO: not shown
        ["ERROR", "vix_ttl.breaker", "breaker_listener_failed", "new_mode=normal"],
        # 20 refused writes: one line, the error's own words, no traceback
        ["ERROR", "vix_ttl._faults", "cache_backend_failed", "operation=set"],
    ]
    assert result.stderr.splitlines()[-1].endswith('error="OSError: store refuses writes"')


def test_at_debug_a_fault_comes_with_its_traceback() -> None:
    result = run(f"import logging\nlogging.basicConfig(level=logging.DEBUG)\n{WALK}{REFUSED_WRITES}")
    lines = result.stderr.splitlines()
    failed = next(i for i, line in enumerate(lines) if "cache_backend_failed" in line)
    assert lines[failed + 1] == "Traceback (most recent call last):"
    assert "OSError: store refuses writes" in lines[failed + 2 :]
    assert sum(line.startswith("Traceback") for line in lines) == 5  # the listener's 4, the store's 1


def test_a_burst_of_faults_is_one_line_and_its_end_another() -> None:
    result = run(
        'import logging\nlogging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")\n'
        f"{WALK}{REFUSED_WRITES}"
        """
for x in range(20, 1000):  # the burst goes on
    price(x)
store.refusing = False
clock.advance(1)  # a quiet second after the burst's last fault
price(1000)
"""
    )
    faults = [line for line in result.stderr.splitlines() if "cache_" in line]
    assert [line.split()[:2] for line in faults] == [
        ["ERROR", "cache_backend_failed"],
        ["INFO", "cache_backend_recovered"],
    ]
    assert faults[1].endswith("operation=set failed_operations=1000")


def test_a_redis_that_is_not_there_is_one_line_per_operation() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    result = run(
        f"""
import asyncio, logging
from aiocache import RedisCache
from vix_ttl import vix_cached

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
cache = RedisCache(endpoint="127.0.0.1", port={port}, timeout=1)

@vix_cached(60, status=lambda x: "normal", cache=cache)
async def price(x):
    return x

async def main():
    for x in range(10):
        assert await price(x) == x
    await cache.close()

asyncio.run(main())
"""
    )
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines and all(
        line.startswith("ERROR cache_backend_failed function=__main__.price") for line in lines
    )
    # 10 calls, each failing to read then to write: once per operation, not once per call
    assert sorted(line.split("operation=")[1].split()[0] for line in lines) == ["get", "set"]


def test_an_event_is_a_record_of_the_vix_ttl_logger_with_its_fields_as_attributes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    breaker = VIXCircuitBreaker(name="odds", min_samples=0, clock=clock)
    with caplog.at_level(logging.INFO, logger="vix_ttl"):
        breaker.record("panic")
    record = caplog.records[0]
    assert (record.name, record.levelname) == ("vix_ttl.breaker", "WARNING")
    assert record.getMessage() == (
        "breaker_mode_changed breaker=odds old_mode=normal new_mode=high_volatility "
        "panic_ratio_pct=100.0 trigger=sustained_panic"
    )
    fields = ("event", "breaker", "old_mode", "new_mode", "panic_ratio_pct", "trigger")
    assert {name: getattr(record, name) for name in fields} == {
        "event": "breaker_mode_changed",
        "breaker": "odds",
        "old_mode": "normal",
        "new_mode": "high_volatility",
        "panic_ratio_pct": 100.0,
        "trigger": "sustained_panic",
    }


def test_structlogs_own_configuration_neither_reroutes_nor_silences_vix_ttl(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    breaker = VIXCircuitBreaker(name="odds", min_samples=0, clock=FakeClock())
    # An application's structlog set-up is for its own loggers; logging decides for vix_ttl's.
    with capture_logs() as through_structlog, caplog.at_level(logging.INFO, logger="vix_ttl"):
        breaker.record("panic")
    assert through_structlog == []
    assert [record.new_mode for record in caplog.records] == ["high_volatility", "circuit_open"]  # type: ignore[attr-defined]
    assert capsys.readouterr().out == ""


def test_structlogs_processor_formatter_sees_each_event_with_its_fields() -> None:
    lines: list[str] = []

    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Lines()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), structlog.stdlib.add_log_level],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    logger = logging.getLogger("vix_ttl")
    logger.addHandler(handler)  # the suite's conftest takes it off
    logger.setLevel(logging.INFO)
    VIXCircuitBreaker(name="odds", min_samples=0, clock=FakeClock()).record("panic")
    assert json.loads(lines[1]) == {
        "event": "breaker_mode_changed",
        "level": "critical",
        "breaker": "odds",
        "old_mode": "high_volatility",
        "new_mode": "circuit_open",
        "panic_ratio_pct": 100.0,
        "trigger": "sustained_panic",
    }


def test_an_error_whose_message_has_lines_is_still_one_line(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(dict[object, object]):
        def __getitem__(self, key: object) -> object:
            raise OSError("first line\nsecond line")

    @vix_cached(60, status=lambda x: "normal", breaker=VIXCircuitBreaker(clock=FakeClock()), cache=Broken())
    def price(x: int) -> int:
        return x

    with caplog.at_level(logging.WARNING, logger="vix_ttl"):
        price(1)
    (message,) = {record.getMessage() for record in caplog.records if record.operation == "get"}  # type: ignore[attr-defined]
    assert "\n" not in message and 'error="OSError: first line\\nsecond line"' in message


def test_a_traceback_goes_with_a_record_only_at_debug() -> None:
    breaker = VIXCircuitBreaker(min_samples=0, clock=FakeClock())
    breaker.subscribe(lambda _: 1 / 0)
    with captured_logs(logging.INFO) as quiet:
        breaker.record("panic")
    with captured_logs(logging.DEBUG) as verbose:
        breaker.reset()
        breaker.record("panic")

    def tracebacks(logs: list[dict[str, object]]) -> list[bool]:
        return ["exc_info" in log for log in logs if log["event"] == "breaker_listener_failed"]

    assert (tracebacks(quiet), tracebacks(verbose)) == ([False, False], [True, True])
