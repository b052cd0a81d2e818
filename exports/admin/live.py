"""``GET …/exports/company/live-status/``: the live parts of the company, job and index pages, as
JSON, for ``static/exports/live_status.js``. Admin-wrapped (a login, staff), the
user's companies only (a company or job outside them is "not found"), no secrets: only what the
pages show already. ``?company=<pk>``, ``?job=<pk>``, or neither (the index).
"""

from __future__ import annotations

from django.http import Http404, JsonResponse
from django.views.decorators.http import require_safe

from exports.selectors.live_status import (
    live_status_for_company,
    live_status_for_index,
    live_status_for_job,
)


def _pk(request, name: str) -> int | None:
    raw = request.GET.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise Http404(f"{name} is not an id")
    return int(raw)


@require_safe
def live_status_view(request):
    user = request.user
    if not user.has_perm("exports.view_company"):
        return JsonResponse({"error": "forbidden"}, status=403)
    company_pk, job_pk = _pk(request, "company"), _pk(request, "job")
    if job_pk is not None:
        status = live_status_for_job(user=user, job_pk=job_pk)
    elif company_pk is not None:
        status = live_status_for_company(user=user, company_pk=company_pk)
    else:
        status = live_status_for_index(user=user)
    if status is None:
        raise Http404("not found")
    return JsonResponse(status.as_dict(), headers={"Cache-Control": "no-store"})
