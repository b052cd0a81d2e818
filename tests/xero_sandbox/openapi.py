"""Validate the Xero sandbox's answers against Xero's OpenAPI files (``docs/xero-openapi/``):
the product's checker (:mod:`exports.xero.openapi`, where the adjustments are listed), raising
``AssertionError`` with what it found.

    validate_response(body, "PUT", "/api.xro/2.0/ManualJournals", 200)
    validate_response(body, "GET", "/connections", 200)
"""

from __future__ import annotations

from exports.xero.openapi import API, SHOWN, errors, load, response_errors, validator  # noqa: F401


def _raise(problems: list[str]) -> None:
    if problems:
        lines = "\n".join(problems[:SHOWN])
        raise AssertionError(f"{len(problems)} schema error(s)\n{lines}")


def validate(instance, schema_name: str, spec: str = "accounting") -> None:
    _raise(errors(instance, schema_name, spec))


def validate_response(body, method: str, path: str, status: int, *, kind: str | None = None):
    """``body`` is what the sandbox answered; ``kind`` names the element schema of a 400's
    ``Elements`` (e.g. ``ManualJournal``)."""
    try:
        problems = response_errors(body, method, path, status, kind=kind)
    except KeyError as exc:
        raise AssertionError(str(exc)) from None
    _raise(problems)
