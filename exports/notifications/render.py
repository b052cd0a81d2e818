"""The words of each notification: the company, the Pleo job id in full, what happened, what to do,
and a link to the admin page that explains it.

Only names, ids, statuses, counts, times and reasons (Pleo's, Xero's, the adapter's or our own)
go into a message: never a credential field. The service also scrubs the involved credential's
secrets (and, for a Xero connection, its tokens and the Xero client secret) from the rendered
text, as a last guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from django.conf import settings
from django.db.models import Count, Q
from django.urls import reverse

from exports import pleo
from exports.models import Company, Credential, ExportItemRecord, ExportJob, XeroConnection
from exports.notifications.kinds import Kind

PREFIX = "[pleo-export-bridge] "
ITEM_FAILURES_LISTED = 5
COMPANIES_LISTED = 20


class JobEnd(StrEnum):
    """How a job of ours ended, for :data:`Kind.JOB_FAILED` (``facts["cause"]``)."""

    REPORTED = "reported"  # we sent the final event (failed: validation, or every item failed)
    ENDED_IN_PLEO = "ended_in_pleo"  # Pleo failed or expired it under us
    NOT_FOUND = "not_found"  # Pleo no longer finds it


@dataclass(frozen=True)
class Message:
    subject: str
    summary: str
    text: str
    link: str


def when(value: datetime | str | None) -> str:
    if value is None:
        return "an unknown time"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def admin_url(name: str, *args) -> str:
    return f"{settings.PUBLIC_BASE_URL}{reverse(name, args=args)}"


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {plural or word + 's'}"


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def company_line(company: Company) -> str:
    return f"{company.name} (Pleo company id {company.pleo_company_id})"


def _compose(
    *,
    subject: str,
    company: str,
    job: ExportJob | None,
    happened: str,
    todo: str,
    link: str,
    company_label: str = "Company",
) -> Message:
    lines = [f"{company_label}: {company}"]
    if job is not None:
        lines.append(f"Pleo job: {job.pleo_job_id}")
    lines += ["", f"What happened: {happened}", "", f"What to do: {todo}", "", f"Details: {link}"]
    subject = _one_line(subject, 250)
    return Message(
        subject=PREFIX + subject, summary=_one_line(subject, 450), text="\n".join(lines), link=link
    )


def _job_message(
    *, company: Company, job: ExportJob, subject: str, happened: str, todo: str
) -> Message:
    """A message about one job of one company, with the job's admin page as its link."""
    return _compose(
        subject=subject,
        company=company_line(company),
        job=job,
        happened=happened,
        todo=todo,
        link=admin_url("admin:exports_exportjob_change", job.pk),
    )


@dataclass(frozen=True)
class ItemCounts:
    total: int
    reported_ok: int
    booked_unreported: int
    failed: int


def item_counts(job: ExportJob) -> ItemCounts:
    Result, State = ExportItemRecord.Result, ExportItemRecord.State
    counts = ExportItemRecord.objects.filter(export_job=job).aggregate(
        reported_ok=Count("pk", filter=Q(result=Result.SUCCESSFUL, state=State.REPORTED)),
        booked_unreported=Count(
            "pk", filter=Q(result=Result.SUCCESSFUL) & ~Q(state=State.REPORTED)
        ),
        failed=Count("pk", filter=Q(result=Result.FAILED)),
    )
    return ItemCounts(total=job.number_of_items, **counts)


# --- the kinds ------------------------------------------------------------------------------------


def job_failed(*, company: Company, job: ExportJob, facts: dict) -> Message:
    cause = facts.get("cause", JobEnd.ENDED_IN_PLEO)
    reason_type = job.failure_reason_type or ""
    reason = _one_line(job.failure_reason or "", 500)
    detail = f" ({reason_type or 'no reason type'}: {reason or 'no reason given'})"
    expired = (
        reason_type == pleo.JobFailureReasonType.JOB_EXPIRED
        or job.status == pleo.EXPIRED_JOB_STATUS
    )
    counts = item_counts(job)
    if cause == JobEnd.NOT_FOUND:
        verb, happened = "vanished", "Pleo no longer finds this export job (404)."
    elif cause == JobEnd.REPORTED:
        verb = "failed"
        happened = f"The bridge marked the export job failed in Pleo{detail}."
    elif expired:
        verb = "expired"
        happened = f"Pleo expired the export job before the bridge finished it{detail}."
    else:
        verb = job.status or "failed"
        happened = f"The export job is {job.status} in Pleo, ended outside the bridge{detail}."
    not_reported = max(counts.total - counts.reported_ok, 0)
    happened += (
        f" {counts.reported_ok} of {_plural(counts.total, 'item')} were booked and reported to "
        f"Pleo; {not_reported} were not."
    )
    if counts.booked_unreported:
        happened += (
            f" {counts.booked_unreported} of those were booked in the accounting system but not "
            f"reported; they stay booked."
        )
    if cause == JobEnd.REPORTED and not expired:
        todo = (
            "Fix what the reason names (the company's settings in this bridge's admin, or the "
            "accounting settings in Pleo), then ask the bookkeeper to export again from Pleo."
        )
    else:
        todo = (
            f"Ask the bookkeeper to export again from Pleo: the {not_reported} items not "
            f"reported are still waiting there. Items already booked stay in the accounting "
            f"system."
        )
    return _job_message(
        subject=f"{company.name}: export job {job.pleo_job_id} {verb}",
        company=company,
        job=job,
        happened=happened,
        todo=todo,
    )


def items_failed(*, company: Company, job: ExportJob, facts: dict) -> Message:
    counts = item_counts(job)
    failures = list(
        ExportItemRecord.objects.filter(export_job=job, result=ExportItemRecord.Result.FAILED)
        .order_by("id")
        .values_list("accounting_entry_id", "failure_reason_type", "failure_reason")[
            :ITEM_FAILURES_LISTED
        ]
    )
    happened = (
        f"The export job completed with errors: {_plural(counts.reported_ok, 'item')} "
        f"exported, {_plural(counts.failed, 'item')} failed."
    )
    for entry_id, reason_type, reason in failures:
        happened += f"\n- item {entry_id}: {reason_type or 'failed'}: {_one_line(reason, 200)}"
    if counts.failed > len(failures):
        happened += f"\n- and {counts.failed - len(failures)} more (see the job's page)"
    return _job_message(
        subject=f"{company.name}: {_plural(counts.failed, 'item')} failed in export job "
        f"{job.pleo_job_id}",
        company=company,
        job=job,
        happened=happened,
        todo="Each failed item shows its reason in Pleo's export queue ('Review errors'). Fix the "
        "cause (an account mapping, contra accounts, the accounting system) and export those "
        "items again from Pleo.",
    )


def job_at_risk(*, company: Company, job: ExportJob, facts: dict) -> Message:
    minutes = facts.get("minutes_left")
    left = f" ({minutes} min left)" if minutes is not None else ""
    return _job_message(
        subject=f"{company.name}: export job {job.pleo_job_id} is at risk of expiring",
        company=company,
        job=job,
        happened=f"Pleo expires the job at {when(facts.get('deadline'))} unless it hears from "
        f"the bridge{left}. The bridge goes on with it.",
        todo="Nothing, if it finishes in time. If it keeps stalling, read the job's audit trail "
        "(a stopped worker, Pleo failing, a slow accounting system). Should it expire, ask the "
        "bookkeeper to export again from Pleo.",
    )


def blocked_elsewhere(*, company: Company, job: ExportJob, facts: dict) -> Message:
    hours = facts.get("hours")
    return _job_message(
        subject=f"{company.name}: blocked by export job {job.pleo_job_id} owned elsewhere",
        company=company,
        job=job,
        happened=f"The job has been in progress in Pleo since {when(facts.get('since'))}"
        + (f" ({hours} h)" if hours is not None else "")
        + ", but this bridge did not start it (another integration did, or our records were "
        "lost). Pleo runs one export job per company at a time: nothing new starts for "
        f"{company.name} until it finishes.",
        todo="If no other integration exports for this company, adopt the job in the admin "
        "(the job's page, 'Adopt job'): the bridge then finishes it. Otherwise ask whoever runs "
        "the other integration to finish or fail it.",
    )


def reauthorisation(*, credential: Credential, facts: dict) -> Message:
    companies = list(
        Company.objects.filter(credential=credential, active=True).order_by("name")[
            : COMPANIES_LISTED + 1
        ]
    )
    waiting = {
        job.company_id: job.pleo_job_id
        for job in ExportJob.objects.filter(
            company__in=companies,
            claim__in=[ExportJob.Claim.OURS, ExportJob.Claim.STARTING, ExportJob.Claim.ADOPTED],
            status__in=[ExportJob.Status.PENDING, ExportJob.Status.IN_PROGRESS],
        ).order_by("-created_at")
    }
    lines = []
    for company in companies[:COMPANIES_LISTED]:
        job_id = waiting.get(company.pk)
        lines.append(
            f"- {company_line(company)}: "
            + (f"Pleo job {job_id} waits" if job_id else "no job of ours in progress")
        )
    if len(companies) > COMPANIES_LISTED:
        lines.append("- and more (see the credential's page)")
    if not companies:
        lines.append("- no active company uses it")
    status = credential.get_status_display().lower()
    error = _one_line(credential.last_error or "", 500)
    happened = f"Pleo credential '{credential.name}' ({credential.get_kind_display()}) is {status}"
    happened += f": {error.rstrip('.')}." if error else "."
    happened += " No export runs for the companies that use it until it is fixed."
    if credential.kind == Credential.Kind.OAUTH:
        todo = (
            "Open the credential in the admin and use 'Reconnect to Pleo': someone with access "
            "to the Pleo account signs in again."
        )
    else:
        todo = (
            "Create a new API key in Pleo and enter it on the credential's page in the admin "
            "(or fix the one there)."
        )
    names = (
        companies[0].name
        if len(companies) == 1
        else _plural(min(len(companies), COMPANIES_LISTED), "company", "companies")
    )
    return _compose(
        subject=f"{names}: Pleo credential '{credential.name}' needs re-authorisation",
        company="\n" + "\n".join(lines),
        company_label="Companies",
        job=None,
        happened=happened,
        todo=todo,
        link=admin_url("admin:exports_credential_change", credential.pk),
    )


def _plain_reason(reason: str) -> str:
    """The stored reason without its closing "Reconnect …" advice (the message says what to do)."""
    text = _one_line(reason or "", 500).rstrip(".")
    head, _, last = text.rpartition(". ")
    return head if head and last.startswith("Reconnect") else text


def xero_reauthorisation(*, company: Company, job: ExportJob | None, facts: dict) -> Message:
    """The company's Xero connection needs a new consent (refused refresh, revoked, 401/403)."""
    connection = XeroConnection.objects.filter(company=company).first()
    organisation = (connection.tenant_name if connection else "") or "(no organisation chosen)"
    reason = _plain_reason(connection.last_error if connection else "")
    happened = (
        f"Xero no longer lets the bridge use the company's connection to the Xero organisation "
        f"{organisation}"
    )
    happened += f": {reason}." if reason else "."
    happened += (
        f" Nothing is booked in Xero for {company.name} until someone reconnects: its export jobs "
        f"fail (accounting_system_authentication_failure) or wait meanwhile."
    )
    return _compose(
        subject=f"{company.name}: the Xero connection to {organisation} needs re-authorisation",
        company=company_line(company) + f"\nXero organisation: {organisation}",
        job=None,
        happened=happened,
        todo=(
            f"Open the company in the admin and use 'Reconnect Xero': someone who can sign in to "
            f"the Xero organisation {organisation} approves the bridge's access again. Then ask "
            f"the bookkeeper to export again from Pleo any job that failed meanwhile."
        ),
        link=admin_url("admin:exports_company_change", company.pk),
    )


def service_unhealthy(*, facts: dict) -> Message:
    failing = facts.get("failing") or {}
    happened = "The health check found:" + "".join(
        f"\n- {name}: {detail}" for name, detail in failing.items()
    )
    happened += "\nNo export is processed for any company until it runs again."
    active = Company.objects.filter(active=True).count()
    return _compose(
        subject="The worker or the poll tick is missing: exports have stopped",
        company=f"all ({active} active)",
        company_label="Companies",
        job=None,
        happened=happened,
        todo="Start the worker (`python manage.py qcluster`, or its service unit) and read its "
        "log. When only the poll tick is missing, run `python manage.py ensure_schedules` and "
        "check that the worker's scheduler runs. The health endpoint is "
        f"{settings.PUBLIC_BASE_URL}/healthz.",
        link=admin_url("admin:index"),
    )


def reconciliation_flagged(*, company: Company, job: ExportJob | None, facts: dict) -> Message:
    totals = facts.get("totals") or {}
    listed = ", ".join(f"{status.replace('_', ' ')}: {count}" for status, count in totals.items())
    period = f"{facts.get('from')} to {facts.get('to')}"
    return _compose(
        subject=f"{company.name}: the reconciliation of {period} flagged "
        f"{_plural(int(facts.get('flagged') or 0), 'item')}",
        company=company_line(company),
        job=None,
        happened=f"Matching what the bridge reported to Pleo against the ledger ({period}) "
        f"found differences ({listed}).",
        todo="Open the company's reconciliation page for the period, read each flagged row "
        "(a booking missing, changed or twice in the ledger, or an item Pleo holds as exported "
        "that the bridge has no record of) and correct the ledger or ask the bookkeeper.",
        link=admin_url("admin:exports_company_reconciliation", company.pk)
        + f"?date_from={facts.get('from')}&date_to={facts.get('to')}",
    )


def render(
    kind: Kind,
    *,
    company: Company | None,
    credential: Credential | None,
    job: ExportJob | None,
    facts: dict,
) -> Message:
    if kind == Kind.REAUTHORISATION:
        return reauthorisation(credential=credential, facts=facts)
    if kind == Kind.SERVICE_UNHEALTHY:
        return service_unhealthy(facts=facts)
    by_kind = {
        Kind.JOB_FAILED: job_failed,
        Kind.ITEMS_FAILED: items_failed,
        Kind.JOB_AT_RISK: job_at_risk,
        Kind.BLOCKED_ELSEWHERE: blocked_elsewhere,
        Kind.RECONCILIATION_FLAGGED: reconciliation_flagged,
        Kind.XERO_REAUTHORISATION: xero_reauthorisation,
    }
    return by_kind[kind](company=company, job=job, facts=facts)
