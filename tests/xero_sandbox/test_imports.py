"""The Xero sandbox's shape: no import cycle, nothing of the product, only pleo_sandbox's generic
modules, no module over 600 lines; and pleo_sandbox never imports it."""

from __future__ import annotations

from tests.sandbox import test_imports as rules

SHARED = {
    "pleo_sandbox.httpbase",
    "pleo_sandbox.routing",
    "pleo_sandbox.controls",
    "pleo_sandbox.messages",
    "pleo_sandbox.clock",
    "pleo_sandbox.faults",
    "pleo_sandbox.requestlog",
    "pleo_sandbox.rendering",
    "pleo_sandbox.ratelimit",
    "pleo_sandbox.errors",
    "pleo_sandbox.vocabulary",
    "pleo_sandbox.management.serving",
}


def _modules(package: str) -> dict:
    return {rules.module_name(p): p for p in sorted((rules.ROOT / package).rglob("*.py"))}


def _imports(package: str) -> dict[str, set[str]]:
    return {name: rules.imported_names(name, path) for name, path in _modules(package).items()}


def test_no_import_cycle_and_nothing_of_the_product():
    modules = _modules("xero_sandbox")
    assert {"xero_sandbox.server", "xero_sandbox.state"} <= set(modules)
    assert rules.find_cycle(rules.import_graph(modules)) is None
    product = {
        name: sorted(t for t in targets if t.split(".")[0] in rules.PRODUCT_PACKAGES)
        for name, targets in _imports("xero_sandbox").items()
    }
    assert {k: v for k, v in product.items() if v} == {}


def test_only_the_generic_parts_of_pleo_sandbox_are_used():
    used = {
        target
        for targets in _imports("xero_sandbox").values()
        for target in targets
        if target.startswith("pleo_sandbox.")
    }
    modules = {t for t in used if t in _modules("pleo_sandbox")}
    assert modules <= SHARED, modules - SHARED
    assert modules, "the shared mechanics are imported, not copied"


def test_pleo_sandbox_never_imports_xero_sandbox():
    offending = {
        name: [t for t in targets if t.split(".")[0] == "xero_sandbox"]
        for name, targets in _imports("pleo_sandbox").items()
    }
    assert {k: v for k, v in offending.items() if v} == {}


def test_no_module_over_600_lines():
    sizes = {n: len(p.read_text().splitlines()) for n, p in _modules("xero_sandbox").items()}
    assert {n: s for n, s in sizes.items() if s > rules.MAX_LINES} == {}
