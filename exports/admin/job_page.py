"""The export job's page: its fields grouped as Pleo sees the job, as we do, and in
time; the expiry as a countdown and ``expiresIn`` as a duration; run ids that lead to the audit
entries of their run; Pleo's payload labelled as last received, with its time; "None yet." on an
empty inline.

Mixed into ``ExportJobAdmin`` and its inlines (``exports.admin``).
"""

from __future__ import annotations

import json
from datetime import timedelta

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from exports import clock
from exports.models import ExportJob
from exports.selectors.calls_estimate import job_calls_estimate
from exports.timestamps import duration_text, timestamp_html, timestamp_text

# A read-only tabular inline that says "None yet." when empty.
NONE_YET_TABULAR = "admin/exports/edit_inline/tabular_none_yet.html"

UNFINISHED = (ExportJob.Status.PENDING, ExportJob.Status.IN_PROGRESS)

# (title, fields, description). A "Failures" group (failing since, attempts, next retry, last
# error) belongs after "Ours" once the job has those fields.
JOB_FIELDSETS = (
    (
        "Pleo's view",
        (
            "pleo_job_id",
            "company",
            "status",
            "number_of_items",
            "failure_reason_type",
            "failure_reason",
            "is_interactive",
            "vendor_based_bookkeeping",
            "created_by",
        ),
        "The job as Pleo last described it to us.",
    ),
    (
        "Ours",
        (
            "claim",
            "claim_run_link",
            "claimed_at",
            "processing_state",
            "expired_detected_at",
            "expiry_note",
            "calls_estimate",
            "seen_via",
            "first_seen_at",
        ),
        "What this bridge did with it.",
    ),
    (
        "Failures",
        ("failing_state", "failing_since", "attempts", "next_retry_at", "last_error"),
        "Since when it fails, how many attempts, the next retry and the last error.",
    ),
    (
        "Timing",
        (
            "expiry_countdown",
            "expires_in_duration",
            "created_at",
            "started_at",
            "last_updated_at",
            "completed_at",
            "expired_at",
            "updated_at",
        ),
        "Pleo's timestamps, and when Pleo expires the job unless it hears from us.",
    ),
    (
        "Pleo's payload, as last received",
        ("payload_as_received",),
        "",
    ),
)
DISPLAYS = (
    "claim_run_link",
    "expiry_countdown",
    "expires_in_duration",
    "payload_as_received",
    "expiry_note",
    "failing_state",
    "calls_estimate",
)


def run_link(run_id) -> str:
    """A run id as a link to the audit entries of that run."""
    if not run_id:
        return "-"
    url = reverse("admin:exports_auditentry_changelist") + f"?run_id={run_id}"
    return format_html(
        '<a href="{}" title="Audit entries of run {}">{}…</a>', url, run_id, str(run_id)[:8]
    )


def expiry_deadline(job: ExportJob):
    return (job.last_updated_at or job.created_at) + timedelta(seconds=job.expires_in)


class JobLinkMixin:
    """For a row that may belong to an export job (``export_job``): ``job_link``, the job's page
    under the first 8 characters of its Pleo id."""

    @admin.display(description="Job")
    def job_link(self, obj):
        if obj.export_job_id is None:
            return "-"
        url = reverse("admin:exports_exportjob_change", args=[obj.export_job_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.export_job.pleo_job_id)[:8])


class RunLinkMixin:
    """For the audit inline: ``run_link`` instead of the bare ``run_id``."""

    @admin.display(description="Run")
    def run_link(self, obj):
        return run_link(obj.run_id)


class ExportJobPageMixin:
    """For ``ExportJobAdmin``: the grouped page."""

    def get_fieldsets(self, request, obj=None):
        return [
            (title, {"fields": list(fields), "description": description})
            for title, fields, description in JOB_FIELDSETS
        ]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields] + list(DISPLAYS)

    @admin.display(description="Run that claimed it")
    def claim_run_link(self, obj):
        return run_link(obj.claim_run_id)

    @admin.display(description="expiresIn")
    def expires_in_duration(self, obj):
        return f"{duration_text(obj.expires_in)} ({obj.expires_in} s), counted from lastUpdatedAt"

    @admin.display(description="Expires")
    def expiry_countdown(self, obj):
        return expiry_countdown_html(obj)

    @admin.display(description="Calls estimate")
    def calls_estimate(self, obj):
        """Why items were left for re-export (or that all fitted): the expiry guard's last
        estimate of the accounting system's calls against its budgets and the deadline."""
        if obj is None or obj.pk is None:
            return "-"
        text, cut = job_calls_estimate(job=obj)
        if not text:
            return "None (the adapter makes no estimate, or nothing was left to book)."
        if cut:
            return format_html('<strong style="color:#ba2121">⚠ Booked in part: {}</strong>', text)
        return text

    @admin.display(description="Payload")
    def payload_as_received(self, obj):
        received = (
            format_html("received {}", timestamp_html(obj.payload_received_at))
            if obj.payload_received_at
            else "received before this bridge recorded the time"
        )
        return format_html(
            "<p>As last received from Pleo ({}); a read that finds it unchanged is not "
            "recorded.</p><pre style='white-space:pre-wrap;max-width:100%'>{}</pre>",
            received,
            json.dumps(obj.last_payload, indent=2, ensure_ascii=False, sort_keys=True),
        )


def _countdown(job: ExportJob, *, now, when) -> str:
    if job.status not in UNFINISHED:
        return f"- (the job is {job.get_status_display().lower()} in Pleo)"
    now = now or clock.now()
    deadline = expiry_deadline(job)
    left = int((deadline - now).total_seconds())
    if left <= 0:
        return format_html("expired {} ago, at {}", duration_text(-left), when(deadline, now=now))
    return format_html("in {}, at {}", duration_text(left), when(deadline, now=now))


def expiry_countdown_html(job: ExportJob, *, now=None):
    """``in 12 min 30 s, at 2025-03-04 12:14:05 UTC (in 12 min)``; for a job no longer open,
    why there is none."""
    return _countdown(job, now=now, when=timestamp_html)


def expiry_countdown_plain(job: ExportJob, *, now=None) -> str:
    """:func:`expiry_countdown_html` as text (the live refresh)."""
    return str(_countdown(job, now=now, when=timestamp_text))
