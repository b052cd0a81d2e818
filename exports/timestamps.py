"""Timestamps as people read them: seconds, the zone, and how long ago.

``TIME_ZONE`` stays UTC: rows are stored and logs written in UTC. ``DISPLAY_TIME_ZONE`` (default
UTC) is only what a person reads: ``2025-03-04 12:14:05 CET (3 min ago)``. One implementation for
every page and read that shows a time: the admin (``exports.admin.timestamps`` routes Django's
rendering through :func:`timestamp_html`), the selectors, the ``|timestamp`` filter.

Audit messages and notices name instants in UTC whatever the display zone (they are stored and
read next to log lines): :func:`utc_text`.

The relative part is computed on the product's clock (``exports.clock``) when the text is made;
the pages that refresh their live parts (``exports.admin.live``) send it again.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from exports import clock


@functools.cache
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"DISPLAY_TIME_ZONE={name!r} is not a time zone name (e.g. Europe/Copenhagen, UTC)"
        ) from exc


def display_zone() -> tzinfo:
    return _zone(settings.DISPLAY_TIME_ZONE)


def _amount(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"


def relative(value: datetime, *, now: datetime | None = None) -> str:
    """``3 min ago``, ``in 12 min``, ``just now``."""
    now = now or clock.now()
    seconds = int((now - value).total_seconds())
    if abs(seconds) < 5:
        return "just now"
    if seconds > 0:
        return f"{_amount(seconds)} ago"
    return f"in {_amount(-seconds)}"


def duration_text(seconds: int | float | None) -> str:
    """A duration for a person: ``45 s``, ``12 min 30 s``, ``2 h 05 min``, ``3 days 4 h``."""
    if seconds is None:
        return "-"
    seconds = int(seconds)
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    if seconds < 60:
        text = f"{seconds} s"
    elif seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        text = f"{minutes} min {rest:02d} s" if rest else f"{minutes} min"
    elif seconds < 2 * 86400:
        hours, rest = divmod(seconds, 3600)
        text = f"{hours} h {rest // 60:02d} min" if rest // 60 else f"{hours} h"
    else:
        days, rest = divmod(seconds, 86400)
        text = f"{days} days {rest // 3600} h" if rest // 3600 else f"{days} days"
    return sign + text


def absolute(value: datetime) -> str:
    """``2025-03-04 12:14:05 CET``: in ``DISPLAY_TIME_ZONE``, with seconds and the zone."""
    if timezone.is_naive(value):
        value = timezone.make_aware(value, ZoneInfo("UTC"))
    local = value.astimezone(display_zone())
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


def utc_text(moment: datetime) -> str:
    """An instant as stored text reads it: ``2026-12-03 03:41:08 UTC`` (audit messages, notices)."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def timestamp_text(value: datetime | None, *, now: datetime | None = None, empty="-") -> str:
    """``2025-03-04 12:14:05 CET (3 min ago)``."""
    if value is None:
        return empty
    return f"{absolute(value)} ({relative(value, now=now)})"


def timestamp_html(value: datetime | None, *, now: datetime | None = None, empty="-") -> SafeString:
    """:func:`timestamp_text` as HTML: a ``<time>`` (machine-readable UTC) and the relative time."""
    if value is None:
        return format_html("{}", empty)
    utc = value.astimezone(ZoneInfo("UTC")) if timezone.is_aware(value) else value
    return format_html(
        '<time datetime="{}">{}</time> <span class="timestamp-relative">({})</span>',
        utc.isoformat(timespec="seconds"),
        absolute(value),
        relative(value, now=now),
    )
