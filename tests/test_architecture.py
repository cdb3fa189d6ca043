"""The import graph ARCHITECTURE.md draws: one way, the core free of integrations."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "vix_ttl"

# ARCHITECTURE.md's layers: a module imports only modules of earlier layers (or its own
# layer's modules listed before it). Modules of subpackages are named by their dotted path.
LAYERS = [
    ["_checks", "_enum", "status", "_signing", "_keys", "_log", "_faults", "_budget", "_monotonic"],
    ["window", "mode", "learning", "policy", "_envelope", "_coalesce", "_stale", "_refresh", "_lease"],
    ["breaker", "registry", "detector"],
    [
        "_cache",
        "_cache.options",
        "_cache.api",
        "_cache.shared",
        "_stores",
        "_stores.mapping",
        "_cache.engine",
        "_proxy",
        "decorator",
        "store",
    ],
    [
        "__init__",
        "_redis",
        "_typed",
        "_aiocache_backend",
        "aiocache",
        "_stores.aiocache",
        "_stores.redis",
        "_http",
        "asgi",
        "fleet",
        "prometheus",
        "observability",
        "testing",
        "pytest_plugin",
        "__main__",
    ],
]
# The simulator (vix_ttl/sim/): it imports the library, and its own modules listed before it.
SIMULATOR = [
    "sim",
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


def path_of(module: str) -> Path:
    path = PACKAGE.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


MODULES = sorted(module_of(path) for path in PACKAGE.rglob("*.py"))


def imports_of(module: str) -> set[str]:
    """The vix_ttl modules *module* imports (``sim.cli`` for vix_ttl.sim.cli), anywhere in it."""
    tree = ast.parse(path_of(module).read_text())
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
    assert set(MODULES) == set(ORDER)


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


# Private names of other libraries that are their public API, or read on purpose.
FOREIGN_PRIVATE = {
    "_fields",  # namedtuple's public API
    "_make",
    "_replace",
    "_asdict",
    "_value2member_map_",  # enum's lookup by value, and a member's name and value
    "_name_",
    "_value_",
    "_self_instance",  # wrapt: a proxy's own attributes are named _self_*
    "_self_parent",
    "_self_binding",
    "_self_owner",
}


def _own_private_names(tree: ast.AST) -> set[str]:
    """The private names a module defines: functions, classes, attributes it assigns, slots."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("_"):
            names.add(node.value)  # __slots__ entries, wrapt's _self_ attributes
    return names


@pytest.mark.parametrize("module", MODULES)
def test_no_module_reads_another_modules_private_attributes(module: str) -> None:
    """``obj._name`` only for names the module defines itself: what another module keeps
    private is read through its public methods (the breaker's ``observe``, an engine's
    ``clock``), never behind its back."""
    tree = ast.parse(path_of(module).read_text())
    own = _own_private_names(tree)
    foreign = sorted(
        {
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and node.attr not in own | FOREIGN_PRIVATE
        }
    )
    assert not foreign, f"{module} reads private attributes it does not define: {foreign}"


def test_import_vix_ttl_loads_no_integration() -> None:
    # The extras' packages, and the simulator that brings two of them.
    optional = ("aiocache", "redis", "prometheus_client", "matplotlib", "tqdm", "vix_ttl.sim")
    probe = f"import sys, vix_ttl; print(sorted(m for m in {optional!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
