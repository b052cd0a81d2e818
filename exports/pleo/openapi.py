"""Validate JSON against Pleo's published OpenAPI schemas (``docs/pleo-openapi/*.yml``).

Product code (``manage.py verify_pleo_contract`` checks real Pleo answers with it) and the tests'
helpers (``tests/openapi_schemas.py`` re-exports it). No Django, no model: like the client, it
reads only the files.

    from exports.pleo.openapi import validate, validate_request_body, validate_response

    validate(body, "DataResponseExportJobV3")                          # export-api-v3 by default
    validate(body, "CursorPaginatedResponseExportItemV3", spec="export-items-v3")
    validate(body, "SubscriptionRequest", spec="webhook-subscriptions")
    validate_request_body(payload, "PUT", "/v3/export-jobs/{jobId}/items")
    validate_response(body, "GET", "/v3/export-jobs", 200)
    response_errors(body, "GET", "/v3/export-jobs", 200)               # messages, no raise

Validation is JSON Schema Draft 2020-12 (``jsonschema``) over ``components.schemas`` with
``$ref``s resolved through a ``referencing`` registry, and with format checking for ``uuid`` and
``date-time`` (RFC 3339). ``no_extra_fields=True`` also rejects properties the schema does not
declare (every object gets ``additionalProperties: false``), to check field names.

Adjustments to Pleo's files, applied to an in-memory copy (the files are not edited):

* Pleo's spec puts bogus ``pattern`` values on date/date-time fields: the literal strings
  ``YYYY-MM-DDTHH:mi:ssZ``, ``yyyy-MM-dd'T'HH:mm:ss'Z'`` and ``YYYY-MM-DD`` are human-readable
  format hints, not regular expressions, and no real timestamp matches them. Those ``pattern``
  keys are stripped (``BOGUS_PATTERNS``); the ``format`` next to them is still checked.
* ``NULLABLE_IN_PRACTICE``: a few response fields are typed as plain strings but Pleo documents
  (and its how-to examples show) them as ``null`` until set; ``null`` is allowed for those only.
  Pass ``pleo_nullable_fixups=False`` to validate against the spec exactly as published.

The spec directory is the repository's ``docs/pleo-openapi/`` (verbatim copies, Apache 2.0).
"""

from __future__ import annotations

import copy
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_FILES = {
    "export-api-v3": "export-api-v3.yml",
    "export-items-v3": "export-items-v3.yml",
    "webhook-subscriptions": "webhook-subscriptions.yml",
}
# Human-readable format hints that Pleo's spec puts in `pattern` (they are not regexes).
BOGUS_PATTERNS = frozenset({"YYYY-MM-DDTHH:mi:ssZ", "yyyy-MM-dd'T'HH:mm:ss'Z'", "YYYY-MM-DD"})
# (spec, schema, property): typed `string` in the spec, documented/shown as null until set.
NULLABLE_IN_PRACTICE = frozenset(
    {
        ("export-api-v3", "ExportJobV3", "failureReasonType"),
        ("export-api-v3", "ExportJobItemV3", "failureReasonType"),
        ("export-items-v3", "ExportItemV3", "subType"),
    }
)
# Pleo's own timestamp shape (stricter than RFC 3339): second precision, UTC, Z.
PLEO_TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


SPEC_DIR = Path(__file__).resolve().parents[2] / "docs" / "pleo-openapi"


def spec_dir() -> Path:
    """Verbatim copies kept in the repository, so every clone (and deployment) has them."""
    return SPEC_DIR


def _uri(spec: str) -> str:
    return f"urn:pleo-openapi:{spec}"


@cache
def load_spec(spec: str) -> dict:
    """The OpenAPI document as published (parsed YAML)."""
    if spec not in SPEC_FILES:
        raise KeyError(f"unknown spec {spec!r}; expected one of {sorted(SPEC_FILES)}")
    path = spec_dir() / SPEC_FILES[spec]
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: Pleo's OpenAPI files are missing")
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _strip_bogus_patterns(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: _strip_bogus_patterns(v)
            for k, v in node.items()
            if not (k == "pattern" and v in BOGUS_PATTERNS)
        }
    if isinstance(node, list):
        return [_strip_bogus_patterns(v) for v in node]
    return node


def close_objects(node: Any) -> Any:
    """Add ``additionalProperties: false`` to every schema that declares ``properties``."""
    if isinstance(node, dict):
        out = {k: close_objects(v) for k, v in node.items()}
        if isinstance(out.get("properties"), dict) and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [close_objects(v) for v in node]
    return node


@cache
def _prepared(spec: str, no_extra_fields: bool, pleo_nullable_fixups: bool) -> dict:
    doc = _strip_bogus_patterns(copy.deepcopy(load_spec(spec)))
    schemas = doc["components"]["schemas"]
    if pleo_nullable_fixups:
        for fix_spec, schema_name, prop in NULLABLE_IN_PRACTICE:
            if fix_spec == spec and schema_name in schemas:
                target = schemas[schema_name]["properties"][prop]
                types = target["type"] if isinstance(target["type"], list) else [target["type"]]
                target["type"] = [*types, "null"] if "null" not in types else types
    if no_extra_fields:
        doc["components"]["schemas"] = close_objects(schemas)
    return doc


@cache
def _registry(spec: str, no_extra_fields: bool, pleo_nullable_fixups: bool) -> Registry:
    doc = _prepared(spec, no_extra_fields, pleo_nullable_fixups)
    resource = Resource.from_contents(doc, default_specification=DRAFT202012)
    return Registry().with_resource(_uri(spec), resource)


def _format_checker() -> FormatChecker:
    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not _RFC3339_RE.match(value):
            return False
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        return True

    return checker


FORMAT_CHECKER = _format_checker()


def schema_names(spec: str = "export-api-v3") -> list[str]:
    return sorted(load_spec(spec)["components"]["schemas"])


def schema(name: str, spec: str = "export-api-v3", **options: bool) -> dict:
    """A component schema after the adjustments above (refs left in place)."""
    return _prepared(
        spec, options.get("no_extra_fields", False), options.get("pleo_nullable_fixups", True)
    )["components"]["schemas"][name]


def enum_values(name: str, spec: str = "export-api-v3") -> list[str]:
    """The ``enum`` of a component schema, e.g. ``enum_values("ExportJobStatus")``."""
    return list(load_spec(spec)["components"]["schemas"][name]["enum"])


def _validator_for(
    subschema: dict, spec: str, no_extra_fields: bool, pleo_nullable_fixups: bool
) -> Draft202012Validator:
    return Draft202012Validator(
        subschema,
        registry=_registry(spec, no_extra_fields, pleo_nullable_fixups),
        format_checker=FORMAT_CHECKER,
    )


def validator(
    schema_name: str,
    spec: str = "export-api-v3",
    *,
    no_extra_fields: bool = False,
    pleo_nullable_fixups: bool = True,
) -> Draft202012Validator:
    """The validator of the component schema ``schema_name``, with the adjustments and options
    the module docstring describes."""
    if schema_name not in load_spec(spec)["components"]["schemas"]:
        raise KeyError(f"{spec} has no schema {schema_name!r}")
    ref = {"$ref": f"{_uri(spec)}#/components/schemas/{schema_name}"}
    return _validator_for(ref, spec, no_extra_fields, pleo_nullable_fixups)


def _line(error: ValidationError) -> str:
    """One error as ``/path/to/field: message``."""
    return f"/{'/'.join(map(str, error.absolute_path))}: {error.message}"


def _raise_all(v: Draft202012Validator, instance: Any, what: str) -> None:
    errors = sorted(v.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [_line(e) for e in errors[:20]]
        raise ValidationError(f"{what}: {len(errors)} error(s)\n" + "\n".join(lines))


def errors(
    instance: Any, schema_name: str, spec: str = "export-api-v3", **options: bool
) -> list[str]:
    """Every validation error message (empty when valid); ``options`` as for :func:`validator`."""
    return [_line(e) for e in validator(schema_name, spec, **options).iter_errors(instance)]


def validate(instance: Any, schema_name: str, spec: str = "export-api-v3", **options: bool) -> None:
    """Raise ``jsonschema.ValidationError`` (listing every error) unless ``instance`` is valid;
    ``options`` as for :func:`validator`."""
    _raise_all(validator(schema_name, spec, **options), instance, f"{spec}#{schema_name}")


def _spec_for_path(path: str) -> str:
    for spec in SPEC_FILES:
        if path in load_spec(spec).get("paths", {}):
            return spec
    raise KeyError(f"no spec documents the path {path!r}")


def _operation(method: str, path: str, spec: str | None) -> tuple[str, dict]:
    spec = spec or _spec_for_path(path)
    paths = load_spec(spec)["paths"]
    if path not in paths or method.lower() not in paths[path]:
        raise KeyError(f"{spec} documents no {method.upper()} {path}")
    return spec, paths[path][method.lower()]


def _media_schema(content: dict, what: str) -> dict:
    for media in ("application/json;charset=UTF-8", "application/json"):
        if media in content:
            return content[media]["schema"]
    raise KeyError(f"{what} has no JSON schema")


def _rebase_refs(node: Any, spec: str) -> Any:
    """Point an operation-level schema's local refs at the registered spec document."""
    if isinstance(node, dict):
        return {
            k: (f"{_uri(spec)}{v}" if k == "$ref" and v.startswith("#") else _rebase_refs(v, spec))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase_refs(v, spec) for v in node]
    return node


def _body_validator(body_schema: dict, spec: str, options: dict) -> Draft202012Validator:
    """The validator for an operation's request or response body schema: its local refs pointed
    at the spec document, the bogus patterns dropped, ``options`` as for :func:`schema`."""
    return _validator_for(
        _strip_bogus_patterns(_rebase_refs(body_schema, spec)),
        spec,
        options.get("no_extra_fields", False),
        options.get("pleo_nullable_fixups", True),
    )


def validate_request_body(
    instance: Any, method: str, path: str, spec: str | None = None, **options: bool
) -> None:
    """Validate a request body against the operation's ``requestBody`` schema.

    ``path`` is the spec's templated path, e.g. ``/v3/export-jobs/{jobId}/items``.
    """
    spec, op = _operation(method, path, spec)
    body_schema = _media_schema(op["requestBody"]["content"], f"{method} {path} request")
    v = _body_validator(body_schema, spec, options)
    _raise_all(v, instance, f"{method.upper()} {path} request body")


def _response_validator(
    method: str, path: str, status: int, spec: str | None, options: dict
) -> Draft202012Validator | None:
    """The validator for the operation's ``status`` answer; None when it documents no body."""
    spec, op = _operation(method, path, spec)
    response = op["responses"].get(str(status))
    if response is None:
        raise KeyError(f"{method.upper()} {path} documents no {status} response")
    if "content" not in response:
        return None
    body_schema = _media_schema(response["content"], f"{method} {path} {status}")
    return _body_validator(body_schema, spec, options)


def validate_response(
    instance: Any, method: str, path: str, status: int, spec: str | None = None, **options: bool
) -> None:
    """Validate a response body against the operation's schema for ``status``."""
    v = _response_validator(method, path, status, spec, options)
    if v is None:
        if instance not in (None, b"", ""):
            raise ValidationError(f"{method.upper()} {path} {status} documents no body")
        return
    _raise_all(v, instance, f"{method.upper()} {path} {status} response")


def response_errors(
    instance: Any, method: str, path: str, status: int, spec: str | None = None, **options: bool
) -> list[str]:
    """Every way a response body breaks the operation's schema for ``status`` (empty when
    valid), each as ``/json/pointer: message``, sorted by where."""
    v = _response_validator(method, path, status, spec, options)
    if v is None:
        return [] if instance in (None, b"", "") else [f"{status} documents no body"]
    found = sorted(v.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    return [_line(e) for e in found]
