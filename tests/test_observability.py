"""Shipped dashboard and alert rules, checked by Prometheus's own tools and a real server."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from tests.conftest import require_binary
from vix_ttl import VIXCircuitBreaker, vix_cached
from vix_ttl.prometheus import register
from vix_ttl.sim.cli import main, shipped
from vix_ttl.testing import FakeClock


def exported_names() -> set[str]:
    breaker = VIXCircuitBreaker(name="x", clock=FakeClock())

    @vix_cached(60, status=lambda: "normal", breaker=breaker)
    def one() -> int:
        return 1

    one()  # a live decorated function: its series are exported
    registry = CollectorRegistry()
    register(registry, [breaker])
    return set(re.findall(r"^(vix_ttl_\w+?)(?:\{| )", generate_latest(registry).decode(), flags=re.M))


def needs(binary: str) -> str:
    return require_binary(binary, "prometheus package")


def test_the_commands_print_the_shipped_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alert-rules"]) == 0
    assert capsys.readouterr().out == shipped("alert-rules")
    assert main(["dashboard"]) == 0
    assert json.loads(capsys.readouterr().out)["uid"] == "vix-ttl"


def test_promtool_accepts_the_alert_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(shipped("alert-rules"))
    result = subprocess.run(
        [needs("promtool"), "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout


def test_every_metric_the_dashboard_and_rules_query_is_exported() -> None:
    dashboard = json.loads(shipped("dashboard"))
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    queries += [a["expr"] for a in dashboard["annotations"]["list"]]
    queries += re.findall(r"expr: (.+)", shipped("alert-rules"))
    used = {name for query in queries for name in re.findall(r"\bvix_ttl_\w+", query)}
    assert used and used <= exported_names(), used - exported_names()
    titles = {panel["title"].split(" (")[0] for panel in dashboard["panels"]}
    assert {
        "Breaker mode",
        "Panic ratio",
        "Mode changes",
        "Adaptive TTLs applied /s",
        "Cache requests /s by result",
    } <= titles


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def scraped_breaker(tmp_path: Path) -> Iterator[tuple[VIXCircuitBreaker, str]]:
    """A breaker in CIRCUIT_OPEN, exported by this process and scraped by a real Prometheus."""
    prometheus = needs("prometheus")
    breaker = VIXCircuitBreaker(name="odds", min_samples=0, clock=FakeClock())
    for status in ["normal"] * 2 + ["panic"] * 18:
        breaker.record(status)
    registry = CollectorRegistry()
    register(registry, [breaker])
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)  # port 0: a free one, held
    exporter_port, prometheus_port = server.server_port, free_port()
    (tmp_path / "rules.yml").write_text(shipped("alert-rules"))
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [rules.yml]\n"
        f"scrape_configs: [{{job_name: vix, static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]}}]\n"
    )
    process = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield breaker, f"http://127.0.0.1:{prometheus_port}"
    finally:
        process.terminate()
        process.wait(30)
        server.shutdown()
        thread.join(10)


def api(base: str, path: str, **params: str) -> Any:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)["data"]


def eventually(read: Any, deadline_seconds: float = 60) -> Any:
    """Poll a real server until it has scraped (a rendezvous, not a clock)."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            value = read()
            if value:
                return value
        except OSError:
            pass  # not up yet
        assert time.monotonic() < deadline, "Prometheus never showed the series"
        time.sleep(0.2)


def test_a_real_prometheus_stores_what_the_breaker_says(
    scraped_breaker: tuple[VIXCircuitBreaker, str],
) -> None:
    breaker, base = scraped_breaker
    modes = eventually(lambda: api(base, "query", query='vix_ttl_breaker_mode{breaker="odds"}')["result"])
    stored = {series["metric"]["mode"]: float(series["value"][1]) for series in modes}
    assert stored == {"normal": 0.0, "high_volatility": 0.0, "circuit_open": 1.0}
    assert breaker.mode == "circuit_open"
    ratio = api(base, "query", query='vix_ttl_panic_ratio{breaker="odds"}')["result"]
    assert float(ratio[0]["value"][1]) == pytest.approx(breaker.panic_ratio)
    transitions = api(base, "query", query='vix_ttl_transitions_total{breaker="odds"}')["result"]
    stored_hops = {f"{s['metric']['from']}->{s['metric']['to']}": float(s["value"][1]) for s in transitions}
    assert stored_hops == {hop: float(n) for hop, n in breaker.metrics()["transitions"].items()}
    firing = eventually(
        lambda: [
            a
            for a in api(base, "alerts")["alerts"]
            if a["labels"]["alertname"] == "VixTTLCircuitOpen" and a["state"] == "firing"
        ]
    )
    assert firing[0]["labels"]["breaker"] == "odds"
