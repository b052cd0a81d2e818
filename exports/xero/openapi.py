"""Validate JSON against Xero's published OpenAPI files (``docs/xero-openapi/``).

Product code (``manage.py verify_xero_contract`` checks real Xero answers with it) and the
sandbox's tests (``tests/xero_sandbox/openapi.py`` raises on what this returns). No Django, no
model.

    response_errors(body, "GET", "/api.xro/2.0/Accounts", 200)        # messages, empty if valid
    response_errors(body, "GET", "/connections", 200)
    errors(instance, "Account")                                       # one schema

JSON Schema Draft 2020-12 over the spec's components, like :mod:`exports.pleo.openapi` (whose
format checker, with ``uuid`` and RFC 3339 ``date-time``, is reused). Adjustments, applied to an
in-memory copy:

* every object schema is closed (``additionalProperties: false``): field names are checked;
* fields marked ``x-is-msdate``/``x-is-msdate-time`` must be Microsoft JSON dates
  (``/Date(1552521600000+0000)/``), Xero's wire format;
* the envelope Xero wraps around every Accounting answer (``Id``, ``Status``, ``ProviderName``,
  ``DateTimeUTC``; the spec's examples show it, its schemas do not) is checked and removed first;
* ``Connection.createdDateUtc``/``updatedDateUtc`` are ``date-time`` in the spec but sent without
  an offset (the spec's own example: ``2019-12-07T18:46:19.5165400``): checked by that shape;
* a 400 the spec does not list for an operation is checked as ``Error``;
* a 400 ``Error``'s ``Elements`` are the documents as sent plus their ``ValidationErrors`` (the
  spec's ``Element`` lists only the latter): each is checked against the document's schema.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from exports.pleo.openapi import FORMAT_CHECKER, close_objects

SPEC_DIR = Path(__file__).resolve().parents[2] / "docs" / "xero-openapi"
SPECS = {"accounting": "xero_accounting.yaml", "identity": "xero-identity.yaml"}
MSDATE = r"^/Date\(-?\d+([+-]\d{4})?\)/$"
IDENTITY_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}$")
ENVELOPE = ("Id", "Status", "ProviderName", "DateTimeUTC")
API = "/api.xro/2.0"
SHOWN = 10


@cache
def load(spec: str) -> dict:
    with (SPEC_DIR / SPECS[spec]).open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506


def _adjust(node):
    if isinstance(node, dict):
        out = {k: _adjust(v) for k, v in node.items()}
        if out.get("x-is-msdate") or out.get("x-is-msdate-time"):
            out["pattern"] = MSDATE
        if out.get("format") == "date-time" and "x-is-datetime" in out:
            out.pop("format")  # identity timestamps: checked by IDENTITY_TIMESTAMP below
        return out
    if isinstance(node, list):
        return [_adjust(v) for v in node]
    return node


@cache
def _registry(spec: str) -> Registry:
    doc = copy.deepcopy(load(spec))
    doc["components"]["schemas"] = close_objects(_adjust(doc["components"]["schemas"]))
    return Registry().with_resource(
        f"urn:xero:{spec}", Resource.from_contents(doc, default_specification=DRAFT202012)
    )


def validator(schema_name: str, spec: str = "accounting") -> Draft202012Validator:
    ref = {"$ref": f"urn:xero:{spec}#/components/schemas/{schema_name}"}
    return Draft202012Validator(ref, registry=_registry(spec), format_checker=FORMAT_CHECKER)


def _errors(instance: Any, schema: dict, spec: str) -> list[str]:
    v = Draft202012Validator(schema, registry=_registry(spec), format_checker=FORMAT_CHECKER)
    found = sorted(v.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]


def errors(instance: Any, schema_name: str, spec: str = "accounting") -> list[str]:
    """Every validation error of ``instance`` against one schema (empty when valid)."""
    return _errors(instance, {"$ref": f"urn:xero:{spec}#/components/schemas/{schema_name}"}, spec)


def _operation(method: str, path: str) -> tuple[str, dict]:
    spec, local = ("accounting", path[len(API) :]) if path.startswith(API) else ("identity", path)
    for template, ops in load(spec)["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, local, flags=re.IGNORECASE) and method.lower() in ops:
            return spec, ops[method.lower()]
    raise KeyError(f"{method} {path}: not in Xero's OpenAPI files")


def _response_schema(spec: str, operation: dict, status: int) -> dict | None:
    response = operation["responses"].get(str(status))
    if response is None and status == 400:  # Xero's 400 is always its Error, documented or not
        return {"$ref": "#/components/schemas/Error"}
    if response is None:
        raise KeyError(f"status {status} is not documented for this operation")
    if "$ref" in response:
        response = load(spec)["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    content = response.get("content", {}).get("application/json")
    return content["schema"] if content else None


def response_schema_name(method: str, path: str, status: int = 200) -> str:
    """The schema a documented answer is checked against (for messages)."""
    spec, operation = _operation(method, path)
    schema = _response_schema(spec, operation, status) or {}
    ref = schema.get("$ref") or schema.get("items", {}).get("$ref", "")
    return ref.rsplit("/", 1)[-1] or f"{method} {path} {status}"


def response_errors(
    body: Any, method: str, path: str, status: int, *, kind: str | None = None
) -> list[str]:
    """Every deviation of ``body`` (an answer of ``method path`` with ``status``) from Xero's
    files; ``kind`` names the element schema of a 400's ``Elements`` (e.g. ``ManualJournal``)."""
    spec, operation = _operation(method, path)
    schema = _response_schema(spec, operation, status)
    if schema is None:
        return [] if body in (None, b"", "") else ["an answer without a documented body has one"]
    problems: list[str] = []
    if spec == "identity" and isinstance(body, list):
        for i, connection in enumerate(body):
            for name in ("createdDateUtc", "updatedDateUtc"):
                value = connection.get(name) if isinstance(connection, dict) else None
                if not isinstance(value, str) or not IDENTITY_TIMESTAMP.match(value):
                    problems.append(f"/{i}/{name}: {value!r} is not Xero's identity timestamp")
    if isinstance(body, dict) and status == 200:
        if body.get("Status") != "OK" or not body.get("Id"):
            problems.append("the Xero envelope (Id, Status OK) is missing")
        if not re.match(MSDATE, str(body.get("DateTimeUTC", ""))):
            problems.append("/DateTimeUTC: not a Microsoft JSON date")
        body = {k: v for k, v in body.items() if k not in ENVELOPE}
    if status == 400 and isinstance(body, dict) and body.get("Elements"):
        if not kind:
            return [*problems, "name the element schema of a 400 with Elements"]
        for element in body["Elements"]:
            problems += errors(element, kind)
        body = {k: v for k, v in body.items() if k != "Elements"}
    wanted = (
        {**schema, "$ref": f"urn:xero:{spec}" + schema["$ref"]}
        if "$ref" in schema
        else {"type": "array", "items": {"$ref": f"urn:xero:{spec}" + schema["items"]["$ref"]}}
    )
    return problems + _errors(body, wanted, spec)


__all__ = ["API", "SPEC_DIR", "errors", "load", "response_errors", "validator"]
