"""Who may import what, read from the source with ``ast`` (every import statement, at any depth:
inside functions and ``if TYPE_CHECKING:`` blocks too).

* The Pleo client (``exports/pleo/``) imports nothing from ``exports`` outside ``exports.pleo``:
  no model, no service, no admin. Callers pass in what it needs.
* No product module (``exports/``, ``pleo_integration/``) imports the Pleo sandbox (nor the Xero
  sandbox, named only by the settings). The product
  names it in two places only, neither an import: the settings add the ``pleo_sandbox`` app when
  ``DEBUG`` or ``PLEO_SANDBOX`` is on, and the demo starts ``manage.py pleo_sandbox`` as a process.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLEO_CLIENT = ROOT / "exports" / "pleo"
PRODUCT = [ROOT / "exports", ROOT / "pleo_integration"]
# Where product code may name the sandbox (a string, not an import), and why.
SANDBOX_NAMED_IN = {
    "pleo_integration/settings.py": "INSTALLED_APPS gets pleo_sandbox when DEBUG or PLEO_SANDBOX"
    " (xero_sandbox when DEBUG or XERO_SANDBOX)",
    "exports/services/demo.py": "the demo starts `manage.py pleo_sandbox` as a child process",
}
MAX_LINES = 600
# The local sandboxes (pleo_sandbox/, xero_sandbox/): the product imports neither.
SANDBOXES = ("pleo_sandbox", "xero_sandbox")


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``; ``from x import y`` yields
    ``x.y`` (``y`` may be a module: ``from exports import models``)."""
    package = path.relative_to(ROOT).parts[:-1]  # of a module and of an __init__.py alike
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            anchor = list(package[: len(package) - node.level + 1]) if node.level else []
            base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def python_files(*roots: Path) -> list[Path]:
    return sorted(path for root in roots for path in root.rglob("*.py"))


def forbidden_for_the_client(path: Path) -> list[str]:
    """``exports.<x>`` imports with ``x`` other than ``pleo``, one per line and ``x``."""
    found = set()
    for line, name in imports_of(path):
        parts = name.split(".")
        if parts[0] == "exports" and len(parts) > 1 and parts[1] != "pleo":
            found.add((line, f"exports.{parts[1]}"))
    return [
        f"{path.relative_to(ROOT).as_posix()}:{line} imports {name}" for line, name in sorted(found)
    ]


def test_the_walk_sees_every_kind_of_import(tmp_path, monkeypatch):
    """The checks below can fail: function-level, TYPE_CHECKING and relative imports are seen."""
    package = tmp_path / "exports" / "pleo"
    package.mkdir(parents=True)
    probe = package / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from exports.services import budget\n"
        "def f():\n    import exports.models\n"
        "from ..admin import site\n"
        "from . import hosts\n"
        "from exports import models, pleo\n"
    )
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert "exports.pleo.hosts" in {name for _, name in imports_of(probe)}
    assert forbidden_for_the_client(probe) == [
        "exports/pleo/probe.py:3 imports exports.services",
        "exports/pleo/probe.py:5 imports exports.models",
        "exports/pleo/probe.py:6 imports exports.admin",
        "exports/pleo/probe.py:8 imports exports.models",
    ]


@pytest.mark.parametrize("path", python_files(PLEO_CLIENT), ids=lambda p: p.name)
def test_the_pleo_client_imports_nothing_from_exports_outside_exports_pleo(path):
    assert forbidden_for_the_client(path) == []


@pytest.mark.parametrize("path", python_files(PLEO_CLIENT), ids=lambda p: p.name)
def test_no_module_of_the_pleo_client_is_over_600_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_no_product_module_imports_the_sandbox():
    importing = [
        f"{path.relative_to(ROOT).as_posix()}:{line} imports {name}"
        for path in python_files(*PRODUCT)
        for line, name in imports_of(path)
        if name.split(".")[0] in SANDBOXES
    ]
    assert importing == []


def test_the_product_names_the_sandbox_only_where_it_starts_it():
    """A string that is the sandbox's app or module name (docstrings may mention it freely)."""
    naming = set()
    for path in python_files(*PRODUCT):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            value = node.value if isinstance(node, ast.Constant) else None
            if isinstance(value, str) and value.split(".")[0] in SANDBOXES:
                naming.add(path.relative_to(ROOT).as_posix())
    assert naming == set(SANDBOX_NAMED_IN)


PROJECT_PACKAGES = ("exports", "pleo_integration", *SANDBOXES)


def private_imports(path: Path) -> list[str]:
    """``from <project module> import _name``: another module's internals (``_name`` but not
    ``__name__``-style dunders). Aliasing a public name to a private one is fine."""
    return [
        f"{path.relative_to(ROOT).as_posix()}:{line} imports {name}"
        for line, name in imports_of(path)
        if name.split(".")[0] in PROJECT_PACKAGES
        and name.rsplit(".", 1)[-1].startswith("_")
        and not name.rsplit(".", 1)[-1].startswith("__")
    ]


def test_the_private_import_check_sees_one(tmp_path, monkeypatch):
    package = tmp_path / "exports" / "services"
    package.mkdir(parents=True)
    (package / "peeking.py").write_text(
        "from exports.services.xero_booking import GONE, _quoted\n"
        "from exports.notifications import admin as _notifications_admin\n"
    )
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert private_imports(package / "peeking.py") == [
        "exports/services/peeking.py:1 imports exports.services.xero_booking._quoted"
    ]


def test_no_module_imports_another_modules_private_names():
    """Shared helpers are public where they live (``exports.timestamps.utc_text``, the journal's
    ``minor_units``): no module reaches into another's internals."""
    found = [
        hit
        for path in python_files(*PRODUCT, *(ROOT / s for s in SANDBOXES))
        for hit in private_imports(path)
    ]
    assert found == []


XERO_CLIENT = ROOT / "exports" / "xero"
XERO_CLIENT_MAY_IMPORT = {"exports.xero", "exports.pleo"}


def forbidden_for_the_xero_client(path: Path) -> list[str]:
    """The Xero client imports only itself and the Pleo client's generic parts, never its own
    package's models (the models module is the package's one Django part, imported by
    ``exports.models``)."""
    found = set()
    for line, name in imports_of(path):
        parts = name.split(".")
        if parts[0] != "exports" or len(parts) < 2:
            continue
        if ".".join(parts[:2]) not in XERO_CLIENT_MAY_IMPORT or name.startswith(
            "exports.xero.models"
        ):
            found.add((line, name))
    return [f"{path.relative_to(ROOT).as_posix()}:{line} imports {name}" for line, name in found]


def test_the_xero_check_sees_a_model_import(tmp_path, monkeypatch):
    package = tmp_path / "exports" / "xero"
    package.mkdir(parents=True)
    probe = package / "probe.py"
    probe.write_text("from exports.xero import models\nfrom exports.services import oauth\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert sorted(forbidden_for_the_xero_client(probe)) == [
        "exports/xero/probe.py:1 imports exports.xero.models",
        "exports/xero/probe.py:2 imports exports.services.oauth",
    ]


@pytest.mark.parametrize(
    "path",
    [p for p in python_files(XERO_CLIENT) if p.name != "models.py"],
    ids=lambda p: p.name,
)
def test_the_xero_client_imports_no_model_service_or_admin(path):
    assert forbidden_for_the_xero_client(path) == []
    assert len(path.read_text().splitlines()) <= MAX_LINES
