"""Xero's date shapes.

Xero's JSON carries dates as Microsoft JSON dates: ``/Date(1552521600000+0000)/`` (``Date``,
``DueDate``, lock dates: a calendar date at midnight UTC) and ``UpdatedDateUTC`` with the time.
Requests may send ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM:SS`` or a ``/Date(…)/`` value. Identity
(``/connections``) timestamps are ISO 8601 without an offset, e.g. ``2019-12-07T18:46:19.5165400``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

_MSDATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def msdate(value: date | None) -> str | None:
    """A calendar date as ``/Date(ms+0000)/`` (midnight UTC)."""
    if value is None:
        return None
    moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    return f"/Date({int(moment.timestamp() * 1000)}+0000)/"


def msdatetime(value: datetime) -> str:
    return f"/Date({int(value.astimezone(UTC).timestamp() * 1000)}+0000)/"


def identity_timestamp(value: datetime) -> str:
    """``/connections`` shape: ISO 8601, seven fractional digits, no offset (UTC)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"


def parse_date(value) -> date | None:
    """A request's date: ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM:SS`` or ``/Date(ms)/``; None when
    the value is none of these."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    matched = _MSDATE.match(text)
    if matched:
        return datetime.fromtimestamp(int(matched.group(1)) / 1000, tz=UTC).date()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def display(value: date) -> str:
    """Dates in Xero's messages: ``31 Mar 2026``."""
    return value.strftime("%d %b %Y").lstrip("0")
