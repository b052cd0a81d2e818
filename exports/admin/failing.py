"""Read-only facts for the company and job pages: the failing state ("failing
since 12:14, 5 attempts, next retry at 12:23, last error …"), and a company's recent jobs and
audit entries with links to their filtered lists. Small display methods, placed in any fieldset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from exports.selectors import failing as selectors
from exports.services.outcome_labels import outcome_label
from exports.timestamps import timestamp_text


def listing_html(items, *, row: str, cells: Callable[[Any], tuple], table: str, links: tuple):
    """``items`` as rows (``row`` filled with ``cells(item)``) in ``table`` (its first ``{}``),
    then ``links`` (its further ``{}``); with no items, "None yet."."""
    if not items:
        return "None yet."
    rows = format_html_join("", row, (cells(item) for item in items))
    return format_html(table, rows, *links)


def failing_html(text: str) -> str:
    """A failing state's words (``exports.selectors.failing``) as the page shows them."""
    if not text:
        return "Not failing."
    return format_html('<strong style="color:#ba2121">⚠ {}</strong>', text[0].upper() + text[1:])


def _at(value) -> str:
    """With seconds, the zone shown (``DISPLAY_TIME_ZONE``) and how long ago."""
    return timestamp_text(value, empty="")


class CompanyFailingAdminMixin:
    """For ``CompanyAdmin``: ``last_check_result``, ``failing_state``, ``recent_jobs``,
    ``recent_audit``."""

    @admin.display(description="Last check outcome", ordering="last_check_outcome")
    def last_check_result(self, obj):
        """The outcome in words, as on the index ("Job expired in Pleo", not ``job_expired``);
        plain text, so the page's live refresh can put the same words in its place."""
        if obj is None or not obj.last_check_outcome:
            return "-"
        return outcome_label(obj.last_check_outcome)

    @admin.display(description="Failing state")
    def failing_state(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        return failing_html(selectors.company_failing_text(company=obj))

    @admin.display(description="Recent export jobs")
    def recent_jobs(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        jobs = selectors.company_recent_jobs(company=obj)
        list_url = reverse("admin:exports_exportjob_changelist") + f"?company__id__exact={obj.pk}"
        return listing_html(
            jobs,
            row='<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            cells=lambda job: (
                reverse("admin:exports_exportjob_change", args=[job.pk]),
                job.pleo_job_id,
                job.get_status_display(),
                job.get_claim_display(),
                _at(job.created_at),
                selectors.failing_text_for(obj=job) or job.failure_reason_type or "",
            ),
            table='<table class="recent-jobs stack-narrow"><thead><tr><th>Pleo job</th>'
            "<th>Status</th><th>Claim</th><th>Created</th><th>Problem</th></tr></thead>"
            "<tbody>{}</tbody></table>"
            '<p><a href="{}">All export jobs of this company</a></p>',
            links=(list_url,),
        )

    @admin.display(description="Recent audit entries")
    def recent_audit(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        entries = selectors.company_recent_audit(company=obj)
        base = reverse("admin:exports_auditentry_changelist") + f"?company__id__exact={obj.pk}"
        return listing_html(
            entries,
            row='<tr class="audit-{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            cells=lambda entry: (
                entry.outcome,
                _at(entry.created_at),
                str(entry.export_job.pleo_job_id)[:8] if entry.export_job_id else "",
                entry.step,
                entry.get_outcome_display(),
                entry.message,
            ),
            table='<table class="recent-audit stack-narrow"><thead><tr><th>When</th><th>Job</th>'
            "<th>Step</th><th>Outcome</th><th>Message</th></tr></thead><tbody>{}</tbody></table>"
            '<p><a href="{}">All audit entries of this company</a> · '
            '<a href="{}&outcome__exact=error">its errors</a></p>',
            links=(base, base),
        )


class JobFailingAdminMixin:
    """For ``ExportJobAdmin``: ``failing_state``."""

    @admin.display(description="Failing state")
    def failing_state(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        return failing_html(selectors.failing_text_for(obj=obj))
