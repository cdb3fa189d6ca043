from __future__ import annotations

import subprocess
import sys

import pytest

from vix_ttl.cli import main


def test_demo_tells_the_lineup_leak_story(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--rate", "2"]) == 0
    out = capsys.readouterr().out
    assert "normal -> high_volatility" in out
    assert "30 min into the panic: mode circuit_open, a panic request gets TTL 10 s (adaptive)" in out
    assert "after the panic: mode normal, a panic request gets TTL 0 s (bypass)" in out


def test_bad_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--rate", "0"])
    assert exit_info.value.code == 2
    assert "--rate must be a positive number" in capsys.readouterr().err


def test_python_dash_m_runs_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vix_ttl", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "demo" in result.stdout


def test_the_core_imports_without_the_optional_extras() -> None:
    # aiocache, redis and prometheus_client are extras: `import vix_ttl` and
    # @vix_cached on in-process stores must not need them.
    code = (
        "import sys\n"
        "for name in ('aiocache', 'redis', 'prometheus_client'):\n"
        "    sys.modules[name] = None\n"
        "import vix_ttl\n"
        "f = vix_ttl.vix_cached(60, status=lambda x: 'normal')(lambda x: x * 2)\n"
        "assert f(2) == 4 and f(2) == 4 and f.cache_info().hits == 1\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
