"""Every Python example in the README runs as written.

The examples name a local setup's ports (Redis on 6379 or 6390, a cluster node on 7391,
Sentinels on 26391 and 26392); here they reach this run's own servers (.ci/services.sh)
instead, never whatever else listens on those ports on this machine.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiocache import caches

from tests.conftest import server_ports

README = Path(__file__).parent.parent / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
# A port an example names: the variable .ci/services.sh exports this run's in, and which of its ports.
SERVERS = {
    "6379": ("REDIS_PORT", "Redis", 0),
    "6390": ("REDIS_PORT", "Redis", 0),
    "7391": ("REDIS_CLUSTER_PORTS", "the Redis Cluster", 0),
    "26391": ("SENTINEL_PORTS", "Redis Sentinel", 0),
    "26392": ("SENTINEL_PORTS", "Redis Sentinel", 1),
}
PORT = re.compile(rf"\b({'|'.join(SERVERS)})\b")


def on_this_runs_servers(source: str) -> str:
    """*source* with each port it names replaced by the port of this run's server of that kind."""

    def port(match: re.Match[str]) -> str:
        variable, name, index = SERVERS[match[1]]
        return str(server_ports(variable, name)[index])

    return PORT.sub(port, source)


@pytest.mark.parametrize(
    "source",
    [pytest.param(e, marks=[pytest.mark.redis] if PORT.search(e) else []) for e in EXAMPLES],
    ids=[f"example-{i}" for i in range(len(EXAMPLES))],
)
def test_readme_example_runs(source: str) -> None:
    try:
        exec(compile(on_this_runs_servers(source), str(README), "exec"), {"__name__": "readme_example"})
    finally:
        caches.set_config({"default": {"cache": "aiocache.SimpleMemoryCache"}})


def test_the_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 2  # the quickstart: in process, then on Redis
