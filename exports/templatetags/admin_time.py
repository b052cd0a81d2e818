"""``{% load admin_time %}``: ``{{ value|timestamp }}`` and ``{{ seconds|duration }}`` in templates,
as the admin shows them everywhere (``exports.timestamps``)."""

from __future__ import annotations

from django import template

from exports import timestamps

register = template.Library()


@register.filter
def timestamp(value):
    """``2025-03-04 12:14:05 CET (3 min ago)``, as HTML with a ``<time>`` element."""
    return timestamps.timestamp_html(value)


@register.filter
def duration(seconds):
    """``12 min 30 s``."""
    return timestamps.duration_text(seconds)
