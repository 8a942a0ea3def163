"""The package's shape: data flows one way, no import cycles, small modules (docs/design.md).

Imports are read from the source with ``ast`` (every import, inside functions too: a lazy
import that closes a cycle is still a cycle), grouped by unit: a subpackage
(``sysid.estimators``) or a top-level module (``sysid.plot``).
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "sysid"
MAX_LINES = 600

#: What each unit may import from sysid besides the leaves (docs/design.md draws it). Listed
#: bottom-up; a unit imports only units above it in this list, so the flow is one way.
LAYERS = {
    "sysid.trajectories": set(),
    "sysid.parameters": set(),
    "sysid.equations": set(),
    "sysid.selection": set(),
    "sysid.io": set(),
    "sysid.adapters": {"sysid.trajectories"},
    "sysid.datasets": {"sysid.trajectories"},
    "sysid.fields": {"sysid.trajectories", "sysid.parameters"},
    "sysid.integration": {"sysid.fields"},
    "sysid.training": {"sysid.fields", "sysid.integration", "sysid.trajectories", "sysid.io", "sysid.parameters"},
    "sysid.metrics": {"sysid.adapters", "sysid.trajectories"},
    "sysid.model_selection": {"sysid.adapters", "sysid.trajectories"},
    "sysid.comparison": {"sysid.adapters", "sysid.trajectories"},
    "sysid.plot": {"sysid.adapters", "sysid.trajectories"},
    "sysid.estimators": {"sysid.adapters", "sysid.equations", "sysid.fields", "sysid.integration", "sysid.io",
                         "sysid.metrics", "sysid.parameters", "sysid.selection", "sysid.training",
                         "sysid.trajectories"},
    "sysid.ensemble": {"sysid.estimators", "sysid.trajectories"},
    "sysid.report": {"sysid.comparison", "sysid.equations"},
    "sysid.cli": {"sysid.adapters", "sysid.comparison", "sysid.datasets", "sysid.equations", "sysid.io",
                  "sysid.report"},
    "sysid": {"sysid.adapters", "sysid.trajectories"},
}
LEAVES = {"sysid.errors", "sysid.parts", "sysid.registry"}


def _unit(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """unit -> the sysid units it imports (anywhere in its source)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        source = _unit(_module_name(path))
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("sysid.") and _unit(name) != source:
                    edges[source].add(_unit(name))
        edges.setdefault(source, set())
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_every_unit_has_a_layer():
    assert sorted(set(import_graph()) - set(LAYERS) - LEAVES) == []


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_units_import_only_what_is_below_them(layer):
    allowed = LAYERS[layer] | LEAVES
    extra = sorted(import_graph().get(layer, set()) - allowed)
    assert not extra, f"{layer} imports {extra}; it may import {sorted(allowed)} (docs/design.md)"


def test_no_module_is_longer_than_600_lines():
    long = {str(p.relative_to(ROOT.parent)): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules: {long}"


def test_tests_use_public_names():
    """Tests import sysid's public names; a private module only from the tests of its own package.

    ``tests/training/test_x.py`` may unit-test ``sysid.training._collocation`` (as scikit-learn's
    ``linear_model/tests`` import ``linear_model._ridge``); every other test uses names a
    package exports from its ``__init__``.
    """
    private = []
    tests = ROOT.parent / "tests"
    for path in tests.rglob("*.py"):
        folder = path.relative_to(tests).parts[0] if len(path.relative_to(tests).parts) > 1 else ""
        own = f"sysid.{folder}"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sysid."):
                private_module = any(part.startswith("_") for part in node.module.split("."))
                if private_module and _unit(node.module) != own:
                    private.append(f"{path.relative_to(tests)}: from {node.module} import ...")
    assert not private, "\n".join(private)


def test_packages_share_code_through_their_public_names():
    """A module imports another sysid package's names from that package, never its private modules.

    Code shared across packages has one home with a public name (exported by its package's
    ``__init__``); ``sysid.estimators`` reaching into ``sysid.training._least_squares`` would
    make a private module part of the contract.
    """
    reaching = []
    for path in ROOT.rglob("*.py"):
        unit = _unit(_module_name(path))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sysid.") and not node.level:
                private_module = any(part.startswith("_") for part in node.module.split("."))
                if private_module and _unit(node.module) != unit:
                    reaching.append(f"{path.relative_to(ROOT.parent)}: from {node.module} import ...")
    assert not reaching, "\n".join(reaching)
