"""``/favicon.ico``: browsers ask for it on every page; a small icon answers (no 404 per page).

The file is ``exports/static/exports/favicon.ico`` (16 and 32 px), read once. No login: it is the
same public picture for everyone.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from django.http import HttpResponse
from django.views.decorators.http import require_safe

ICON = Path(__file__).resolve().parent / "static" / "exports" / "favicon.ico"
MAX_AGE_SECONDS = 7 * 24 * 3600


@cache
def _icon() -> bytes:
    return ICON.read_bytes()


@require_safe
def favicon(request):
    response = HttpResponse(_icon(), content_type="image/x-icon")
    response["Cache-Control"] = f"public, max-age={MAX_AGE_SECONDS}"
    return response
