"""Timestamps as the admin shows them: seconds, the zone, and how long ago.

``TIME_ZONE`` stays UTC: rows are stored and logs written in UTC. ``DISPLAY_TIME_ZONE`` (default
UTC) is only what a person reads: ``2025-03-04 12:14:05 CET (3 min ago)``. One implementation
for the whole admin:

- :func:`install` (called once at start-up) makes Django's admin render every ``DateTimeField``
  of a list column or read-only field, and every datetime a display method returns, through
  :func:`timestamp_html`;
- display methods and templates that write a timestamp into a sentence use
  :func:`timestamp_text` / :func:`timestamp_html` or the ``|timestamp`` filter
  (``{% load admin_time %}``);
- :class:`DisplayTimeZoneMiddleware` activates the zone for admin requests, so Django's own date
  handling there (``date_hierarchy``, the ``date`` filter) agrees with what is shown.

The formatting itself is ``exports.timestamps`` (selectors use it too).
"""

from __future__ import annotations

import functools
from datetime import datetime

from django.urls import reverse
from django.utils import timezone

from exports.timestamps import display_zone, timestamp_html

# --- Django's admin renders through these ------------------------------------------------------


def install() -> None:
    """Route the admin's rendering of datetimes (list columns, read-only fields, values returned
    by display methods) through :func:`timestamp_html`. Idempotent."""
    from django.contrib.admin import helpers, utils
    from django.contrib.admin.templatetags import admin_list
    from django.db import models

    if getattr(utils.display_for_field, "_exports_timestamps", False):
        return
    original_field, original_value = utils.display_for_field, utils.display_for_value

    def display_for_field(value, field, empty_value_display, *args, **kwargs):
        if (
            isinstance(field, models.DateTimeField)
            and isinstance(value, datetime)
            and not getattr(field, "flatchoices", None)
        ):
            return timestamp_html(value)
        return original_field(value, field, empty_value_display, *args, **kwargs)

    def display_for_value(value, empty_value_display, *args, **kwargs):
        if isinstance(value, datetime) and not (args and args[0]) and not kwargs.get("boolean"):
            return timestamp_html(value)
        return original_value(value, empty_value_display, *args, **kwargs)

    display_for_field._exports_timestamps = True
    display_for_value._exports_timestamps = True
    for module in (utils, helpers, admin_list):
        if hasattr(module, "display_for_field"):
            module.display_for_field = display_for_field
        if hasattr(module, "display_for_value"):
            module.display_for_value = display_for_value


class DisplayTimeZoneMiddleware:
    """Activates ``DISPLAY_TIME_ZONE`` for admin requests (other paths keep UTC)."""

    def __init__(self, get_response):
        self.get_response = get_response
        display_zone()  # an unknown zone name stops the process at start, naming the setting

    @functools.cached_property
    def _prefix(self) -> str:
        return reverse("admin:index")

    def __call__(self, request):
        if not request.path.startswith(self._prefix):
            return self.get_response(request)
        with timezone.override(display_zone()):
            return self.get_response(request)
