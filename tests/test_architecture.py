"""The import graph ARCHITECTURE.md draws: one way, the core free of integrations."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "vix_ttl"

# ARCHITECTURE.md's layers: a module imports only modules of earlier layers (or its own
# layer's modules listed before it).
LAYERS = [
    ["_checks", "_enum", "status", "_signing", "_keys", "_faults", "_budget", "_monotonic"],
    ["window", "mode", "learning", "policy", "_envelope", "_coalesce", "_stale", "_refresh", "_lease"],
    ["breaker", "registry", "detector"],
    ["_engine", "_mapping", "_shared_store", "_proxy", "decorator"],
    [
        "__init__",
        "_redis",
        "_typed",
        "_aiocache_backend",
        "aiocache",
        "_aiocache_store",
        "_redis_store",
        "_http",
        "asgi",
        "fleet",
        "prometheus",
        "testing",
        "pytest_plugin",
        "__main__",
    ],
]
# The simulator (vix_ttl/sim/): it imports the library, and its own modules listed before it.
SIMULATOR = [
    "sim.__init__",
    "sim._virtual_loop",
    "sim.scenario",
    "sim.truth",
    "sim.simulate",
    "sim.frontier",
    "sim.report",
    "sim.demo",
    "sim.plot",
    "sim.cli",
    "sim.__main__",
]
ORDER = {
    module: (layer, position)
    for layer, modules in enumerate([*LAYERS, SIMULATOR])
    for position, module in enumerate(modules)
}
EDGES = set(LAYERS[-1]) - {"__init__", "testing", "pytest_plugin", "__main__"}
ENTRY_POINT = "__main__"
"""``python -m vix_ttl``: the one library module that runs the simulator's command."""


def imports_of(module: str) -> set[str]:
    """The vix_ttl modules *module* imports (``sim.cli`` for vix_ttl.sim.cli), anywhere in it."""
    tree = ast.parse((PACKAGE / f"{module.replace('.', '/')}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vix_ttl"):
            name = node.module.removeprefix("vix_ttl").lstrip(".")
            if name in {"", "sim"}:  # a package: what is imported from it are its modules
                found |= {f"{name}.{alias.name}".lstrip(".") for alias in node.names}
            else:
                found.add(name)
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("vix_ttl.") for a in node.names if a.name.startswith("vix_ttl.")}
    return found - {module}


def test_every_module_has_a_place_in_the_layers() -> None:
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    modules |= {f"sim.{path.stem}" for path in (PACKAGE / "sim").glob("*.py")}
    assert modules == set(ORDER)


@pytest.mark.parametrize("module", sorted(ORDER))
def test_imports_flow_one_way(module: str) -> None:
    for imported in imports_of(module):
        assert imported in ORDER, f"{module} imports unknown vix_ttl.{imported}"
        if module in SIMULATOR:
            if imported in SIMULATOR:
                assert ORDER[imported] < ORDER[module], f"{module} imports {imported}, which comes after it"
            continue
        if module != ENTRY_POINT:
            assert imported not in SIMULATOR, f"the library's {module} imports the simulator's {imported}"
        if ORDER[module][0] < len(LAYERS) - 1:  # the core: strictly earlier, never an edge
            assert imported not in EDGES, f"the core module {module} imports the edge {imported}"
            assert ORDER[imported] < ORDER[module], f"{module} imports {imported}, which comes after it"


def test_import_vix_ttl_loads_no_integration() -> None:
    # The extras' packages, and the simulator that brings two of them.
    optional = ("aiocache", "redis", "prometheus_client", "matplotlib", "tqdm", "vix_ttl.sim")
    probe = f"import sys, vix_ttl; print(sorted(m for m in {optional!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
