"""Middleware that refuses request content the product has no use for, before any view sees it.

NUL in the query string: PostgreSQL text can neither hold nor compare NUL, so a NUL that
reaches a query (an admin list filter such as ``?state__exact=%00``) was a 500 there, and
nothing the product serves takes one. Answered 400, logged at WARNING (the client's doing).

A selected row of an admin action that is not a primary key: the list's checkboxes only ever
send keys, so anything else was typed by hand; Django passes the values to ``pk__in`` unchecked
and the key field's conversion raised (a 500 and an ERROR line). Answered 400 the same way.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.db import connections, router
from django.http import HttpResponseBadRequest

logger = logging.getLogger(__name__)


class RejectNulInQueryString:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if "%00" in query or "\x00" in query:
            logger.warning(
                "Request refused with 400: NUL in the query string [path=%r remote=%s]",
                request.path[:200],
                request.META.get("REMOTE_ADDR", "?"),
            )
            return HttpResponseBadRequest(
                "NUL characters are not accepted in the query string.",
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)


class RejectMalformedAdminSelection:
    """An admin action POST whose ``_selected_action`` values are not keys of the list's model."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        model_admin = getattr(view_func, "model_admin", None)
        if (
            model_admin is None
            or request.method != "POST"
            or not getattr(request.user, "is_staff", False)
            or "_selected_action" not in request.POST
        ):
            return None
        if all(
            _is_key(model_admin.model, value) for value in request.POST.getlist("_selected_action")
        ):
            return None
        logger.warning(
            "Request refused with 400: an admin action selected something that is not a key "
            "[path=%r user=%s]",
            request.path[:200],
            request.user.pk,
        )
        return HttpResponseBadRequest(
            "The selection holds something that is not a row of this list.",
            content_type="text/plain; charset=utf-8",
        )


def _is_key(model, value: str) -> bool:
    field = model._meta.pk
    try:
        key = field.to_python(value)
    except ValidationError:
        return False
    if key is None or key == "":
        return False
    if isinstance(key, int):
        connection = connections[router.db_for_read(model)]
        low, high = connection.ops.integer_field_range(field.get_internal_type())
        return (low is None or key >= low) and (high is None or key <= high)
    return True
