"""Middleware that refuses request content the product has no use for, before any view sees it.

NUL in the query string: PostgreSQL text can neither hold nor compare NUL, so a NUL that
reaches a query (an admin list filter such as ``?state__exact=%00``) was a 500 there, and
nothing the product serves takes one. Answered 400, logged at WARNING (the client's doing).
"""

from __future__ import annotations

import logging

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
