"""The sandbox's shape: no import cycle inside ``pleo_sandbox``, nothing of the product imported,
no module over 600 lines.

Imports are read with ``ast`` (no module is executed), every kind counts: top level, inside a
function, under ``if TYPE_CHECKING``, relative or absolute.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.test_import_cycles import ROOT, module_name

PACKAGE = "pleo_sandbox"
PRODUCT_PACKAGES = ("exports", "pleo_integration")
MAX_LINES = 600


def sandbox_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def imported_names(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                parent = ".".join(base + ([node.module] if node.module else []))
            else:
                parent = node.module or ""
            out.add(parent)
            out.update(f"{parent}.{alias.name}" for alias in node.names)
    return out


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Edges between the package's own modules (an import of a name that is not a module is an
    edge to the module it comes from)."""
    return {
        name: {target for target in imported_names(name, path) if target in modules} - {name}
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    done: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> list[str] | None:
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target in on_stack:
                return stack[stack.index(target) :] + [target]
            if target not in done:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        on_stack.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            found = visit(start)
            if found:
                return found
    return None


def test_the_walk_sees_the_package():
    modules = sandbox_modules()
    assert {"pleo_sandbox", "pleo_sandbox.state", "pleo_sandbox.server"} <= set(modules)
    graph = import_graph(modules)
    assert "pleo_sandbox.state" in graph["pleo_sandbox.server"]


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_walk_reads_every_kind_of_import(tmp_path):
    module = tmp_path / "mod.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "import exports.models\n"
        "from . import sibling\n"
        "from .pkg import name\n"
        "if TYPE_CHECKING:\n"
        "    from pleo_integration import settings\n"
        "def f():\n"
        "    from pleo_sandbox.state import SandboxState\n",
        encoding="utf-8",
    )
    names = imported_names("pleo_sandbox.mod", module)
    assert {
        "exports.models",
        "pleo_sandbox.sibling",
        "pleo_sandbox.pkg.name",
        "pleo_integration.settings",
        "pleo_sandbox.state",
    } <= names


def test_no_import_cycle_inside_the_sandbox():
    cycle = find_cycle(import_graph(sandbox_modules()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_sandbox_imports_nothing_of_the_product():
    offending = {
        name: sorted(
            target
            for target in imported_names(name, path)
            if target.split(".")[0] in PRODUCT_PACKAGES
        )
        for name, path in sandbox_modules().items()
    }
    assert {name: found for name, found in offending.items() if found} == {}


def test_no_sandbox_module_is_over_600_lines():
    sizes = {
        name: len(path.read_text(encoding="utf-8").splitlines())
        for name, path in sandbox_modules().items()
    }
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
