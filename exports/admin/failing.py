"""Read-only facts for the company and job pages: the failing state ("failing
since 12:14, 5 attempts, next retry at 12:23, last error …"), and a company's recent jobs and
audit entries with links to their filtered lists. Small display methods, placed in any fieldset;
a company's listings are :class:`CompanyListing` tables (the company page's deliveries too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from exports.selectors import failing as selectors
from exports.services.outcome_labels import outcome_label
from exports.timestamps import timestamp_text


@dataclass(frozen=True)
class CompanyListing:
    """A table of a company's rows on its page: ``row`` filled with ``cells(item)`` for each item,
    in ``table`` (its ``{rows}``; its ``{url}``: the admin's list of ``model`` filtered to that
    company, for the link to all of them)."""

    model: str
    row: str
    cells: Callable[[Any], tuple]
    table: str

    def html(self, company, items: Callable[..., list]) -> str:
        """``items(company=company)`` as the table; "-" for a company not saved yet, "None yet."
        with no items."""
        if company is None or company.pk is None:
            return "-"
        found = items(company=company)
        if not found:
            return "None yet."
        url = reverse(f"admin:exports_{self.model}_changelist")
        url += f"?company__id__exact={company.pk}"
        rows = format_html_join("", self.row, (self.cells(item) for item in found))
        return format_html(self.table, rows=rows, url=url)


def failing_html(text: str) -> str:
    """A failing state's words (``exports.selectors.failing``) as the page shows them."""
    if not text:
        return "Not failing."
    return format_html('<strong style="color:#ba2121">⚠ {}</strong>', text[0].upper() + text[1:])


def _at(value) -> str:
    """With seconds, the zone shown (``DISPLAY_TIME_ZONE``) and how long ago."""
    return timestamp_text(value, empty="")


JOBS_LISTING = CompanyListing(
    model="exportjob",
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
    "<tbody>{rows}</tbody></table>"
    '<p><a href="{url}">All export jobs of this company</a></p>',
)
AUDIT_LISTING = CompanyListing(
    model="auditentry",
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
    "<th>Step</th><th>Outcome</th><th>Message</th></tr></thead><tbody>{rows}</tbody></table>"
    '<p><a href="{url}">All audit entries of this company</a> · '
    '<a href="{url}&outcome__exact=error">its errors</a></p>',
)


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
        return JOBS_LISTING.html(obj, selectors.company_recent_jobs)

    @admin.display(description="Recent audit entries")
    def recent_audit(self, obj):
        return AUDIT_LISTING.html(obj, selectors.company_recent_audit)


class JobFailingAdminMixin:
    """For ``ExportJobAdmin``: ``failing_state``."""

    @admin.display(description="Failing state")
    def failing_state(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        return failing_html(selectors.failing_text_for(obj=obj))
