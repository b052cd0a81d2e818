"""The preview page (dry run) of a company's next pending job, or of one pending job.

GET shows what a preview does and a button; POST runs it inline (``exports.services.preview``:
read-only Pleo calls through the company's credential and request budget, nothing booked, the
company's lease not taken) and shows the report. Reached from the company page ("Preview next
job") and the job page ("Preview this job"); the company must be in the user's scope.
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from exports.services.preview import job_preview

PREVIEW_PERMISSION = "exports.view_exportjob"
TEMPLATE = "admin/exports/preview.html"


def may_preview(request) -> bool:
    return request.user.has_perm(PREVIEW_PERMISSION)


def preview_page(model_admin, request, *, company, job=None):
    if not may_preview(request):
        model_admin.message_user(request, "You may not preview export jobs.", messages.ERROR)
        return redirect("admin:index")
    report = None
    if request.method == "POST":
        report = job_preview(company=company, pleo_job_id=job.pleo_job_id if job else None)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Preview {'of job ' + str(job.pleo_job_id)[:8] if job else 'of the next job'}"
        f" – {company.name}",
        "opts": model_admin.model._meta,
        "company": company,
        "job": job,
        "report": report,
    }
    return TemplateResponse(request, TEMPLATE, context)
