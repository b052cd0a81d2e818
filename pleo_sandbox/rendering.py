"""How the sandboxes render their objects as JSON (generic, shared with ``xero_sandbox``): the
attribute ``snake_case`` becomes the key ``camelCase`` (the inverse of
:func:`pleo_sandbox.routing.snake`), and values become plain JSON: timestamps in Pleo's shape
(:func:`pleo_sandbox.clock.iso`), sets sorted, tuples and lists as new lists, dicts copied.

An object's ``to_dict``/``to_api`` names the attributes it shows, in the order it shows them, and
adds what is computed (``camel_fields(self, "id", "name") | {"numberOfItems": n}``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pleo_sandbox.clock import iso


def camel(name: str) -> str:
    """``contra_accounts_configured`` → ``contraAccountsConfigured``."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def plain(value: Any) -> Any:
    """``value`` as JSON shows it (see the module docstring); anything else as it is."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, tuple | list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def camel_fields(obj: object, *names: str) -> dict[str, Any]:
    """``{camel(name): plain(obj.name)}`` for each of ``names``, in that order."""
    return {camel(name): plain(getattr(obj, name)) for name in names}
