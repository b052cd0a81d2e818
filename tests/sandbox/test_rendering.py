"""``pleo_sandbox.rendering``: attribute names to camelCase keys, values to plain JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from pleo_sandbox.rendering import camel, camel_fields


def test_camel():
    assert camel("id") == "id"
    assert camel("contra_accounts_configured") == "contraAccountsConfigured"
    assert camel("path_regex") == "pathRegex"


@dataclass
class _Thing:
    created_at: datetime
    scopes: frozenset
    company_ids: tuple
    custom_headers: dict
    label: str | None = None


def test_camel_fields_in_order_with_plain_values():
    headers = {"X": "1"}
    thing = _Thing(
        created_at=datetime(2024, 5, 1, 14, 0, 5, tzinfo=timezone(timedelta(hours=2))),
        scopes=frozenset({"b", "a"}),
        company_ids=("c1", "c2"),
        custom_headers=headers,
    )
    shown = camel_fields(thing, "label", "created_at", "scopes", "company_ids", "custom_headers")
    assert list(shown) == ["label", "createdAt", "scopes", "companyIds", "customHeaders"]
    assert shown == {
        "label": None,
        "createdAt": "2024-05-01T12:00:05Z",  # UTC, second precision (clock.iso)
        "scopes": ["a", "b"],
        "companyIds": ["c1", "c2"],
        "customHeaders": {"X": "1"},
    }
    assert shown["customHeaders"] is not headers  # a copy: the entity is not shared
    assert camel_fields(thing) == {}
