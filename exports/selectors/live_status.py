"""What the company, job and index pages refresh while a check is queued or running.

Read-only, scoped to the user's companies (``exports.selectors.company_access``), and made of
what the pages already show: states, outcomes, errors and times. Never a secret, a payload or a
credential's details.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.urls import reverse
from django.utils.html import format_html

from exports import clock
from exports.models import Company, ExportJob
from exports.selectors.company_access import company_list_for_user, queryset_for_user
from exports.services.dispatch import queued_marker_ttl
from exports.services.outcome_labels import outcome_label
from exports.timestamps import timestamp_text

POLL_SECONDS = 3
MAX_COMPANIES = 50  # as many rows as the index shows


class CheckState:
    IDLE = "idle"
    QUEUED = "queued"
    RUNNING = "running"


def company_check_state(*, company: Company, now: datetime) -> str:
    if company.lease_token is not None and (
        company.lease_expires_at is None or company.lease_expires_at > now
    ):
        return CheckState.RUNNING
    if company.check_queued_at is not None and company.check_queued_at >= now - queued_marker_ttl():
        return CheckState.QUEUED
    return CheckState.IDLE


def _last_check(company: Company, *, now: datetime) -> str:
    if company.last_check_at is None:
        return "never"
    outcome = outcome_label(company.last_check_outcome) or "-"
    return f"{timestamp_text(company.last_check_at, now=now)} · {outcome}"


def _banner(company: Company, state: str, *, now: datetime) -> str:
    if state == CheckState.RUNNING:
        return f"A check of {company.name} is running…"
    if state == CheckState.QUEUED:
        return (
            f"A check of {company.name} is queued (since "
            f"{timestamp_text(company.check_queued_at, now=now)}); the page follows it."
        )
    return ""


@dataclass
class LiveStatus:
    active: bool = False
    banner: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    companies: dict[str, dict[str, str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "active": self.active,
            "poll_seconds": POLL_SECONDS,
            "banner": self.banner,
            "fields": self.fields,
            "companies": self.companies,
        }


def _company_fields(company: Company, *, now: datetime) -> dict[str, str]:
    return {
        "last_check_at": timestamp_text(company.last_check_at, now=now),
        "last_check_outcome": company.last_check_outcome or "-",  # the code, for scripts
        "last_check_result": outcome_label(company.last_check_outcome) or "-",  # the page's words
        "last_check_error": company.last_check_error or "-",
    }


def _job_fields(job: ExportJob, *, now: datetime) -> dict[str, str]:
    from exports.admin.job_page import expiry_countdown_plain

    return {
        "status": job.get_status_display(),
        "claim": job.get_claim_display(),
        "processing_state": job.processing_state or "-",
        "last_updated_at": timestamp_text(job.last_updated_at, now=now),
        "completed_at": timestamp_text(job.completed_at, now=now),
        "number_of_items": str(job.number_of_items),
        "expiry_countdown": expiry_countdown_plain(job, now=now),
    }


def live_status_for_company(*, user, company_pk: int, now=None) -> LiveStatus | None:
    """The company page's live parts (None: not one of the user's companies)."""
    now = now or clock.now()
    company = company_list_for_user(user=user).filter(pk=company_pk).first()
    if company is None:
        return None
    state = company_check_state(company=company, now=now)
    return LiveStatus(
        active=state != CheckState.IDLE,
        banner=_banner(company, state, now=now),
        fields=_company_fields(company, now=now),
    )


def live_status_for_job(*, user, job_pk: int, now=None) -> LiveStatus | None:
    """The job page's live parts (while its company's check is queued or running)."""
    now = now or clock.now()
    job = (
        queryset_for_user(queryset=ExportJob.objects.all(), user=user)
        .select_related("company")
        .filter(pk=job_pk)
        .first()
    )
    if job is None:
        return None
    state = company_check_state(company=job.company, now=now)
    return LiveStatus(
        active=state != CheckState.IDLE,
        banner=_banner(job.company, state, now=now),
        fields=_job_fields(job, now=now),
    )


def live_status_for_index(*, user, now=None) -> LiveStatus:
    """The index's company rows: their last check, and whether one is queued or running."""
    now = now or clock.now()
    companies = company_list_for_user(user=user).filter(active=True).order_by("name")
    status = LiveStatus()
    running = 0
    for company in companies[:MAX_COMPANIES]:
        state = company_check_state(company=company, now=now)
        running += state != CheckState.IDLE
        status.companies[str(company.pk)] = {
            "last_check": _last_check(company, now=now),
            "check_state": {"queued": "check queued…", "running": "check running…"}.get(state, ""),
        }
    status.active = bool(running)
    if running:
        status.banner = f"{running} check{'s' if running != 1 else ''} queued or running…"
    return status


def check_now_follow_link(*, company: Company):
    """Where the operator follows a check just queued: the company's open job, or its audit
    entries while it has none."""
    job = (
        ExportJob.objects.filter(
            company=company,
            status__in=[ExportJob.Status.IN_PROGRESS, ExportJob.Status.PENDING],
        )
        .order_by("-status", "-created_at")  # in_progress before pending
        .only("pk", "pleo_job_id")
        .first()
    )
    if job is not None:
        url = reverse("admin:exports_exportjob_change", args=[job.pk])
        return format_html('<a href="{}">Follow job {}</a>', url, str(job.pleo_job_id)[:8])
    url = reverse("admin:exports_auditentry_changelist") + f"?company__id__exact={company.pk}"
    return format_html('<a href="{}">Follow it in the audit entries of {}</a>', url, company.name)
