"""No import cycle inside ``exports/``, ``pleo_sandbox/`` or ``xero_sandbox/``.

The imports of every module of these packages are read from its source (``ast``): module-level
imports and those inside functions (a deferred import still ties two modules together), but not
those under ``if TYPE_CHECKING:`` (they never run). ``from package import name`` counts as an
import of ``package.name`` when that is a module, else of ``package``. Each strongly connected
group of two or more modules (or a module importing itself) is a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("exports", "pleo_sandbox", "xero_sandbox")


def module_name(path: Path) -> str:
    """The dotted name of the module at ``path`` (a package's ``__init__``: the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom, at any depth, except under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that module ``name`` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        for target in targets:
            # The most specific module of ours the name points to (``a.b.c`` → ``a.b`` if ``c``
            # is a name in it).
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def test_the_walker_finds_a_cycle_and_deferred_imports():
    """The detector itself: a cycle closed by an import inside a function is found."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import x\n"
        "def f():\n    import y\n"
    )
    names = {alias.name for node in _import_nodes(tree) for alias in node.names}
    assert names == {"TYPE_CHECKING", "y"}


def test_the_graph_sees_the_packages_imports():
    graph = import_graph()
    assert "exports.services.runs" in graph["exports.services.lifecycle"]
    assert "exports.services.lifecycle" in graph["exports.services.start_flow"] | graph.get(
        "exports.services.job_start", set()
    )
    assert "exports.services.start_flow" not in graph["exports.services.lifecycle"]


# Cycles that remain today, each to be ended by a restructuring move not done yet. The list only
# shrinks: a new cycle fails the test, and so does one that is gone (take it off the list).
KNOWN_CYCLES: list[list[str]] = []  # none left: a new one fails the test by name


def _listed(cycles: list[list[str]]) -> str:
    return "\n".join(" ↔ ".join(cycle) for cycle in cycles) or "(none)"


def test_no_import_cycle_in_exports_or_the_sandbox_beyond_the_known_ones():
    cycles = import_cycles(import_graph())
    new = [cycle for cycle in cycles if cycle not in KNOWN_CYCLES]
    gone = [cycle for cycle in KNOWN_CYCLES if cycle not in cycles]
    assert not new, "new import cycles:\n" + _listed(new)
    assert not gone, "cycles no longer there, take them off KNOWN_CYCLES:\n" + _listed(gone)
