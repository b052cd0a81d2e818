"""Reads for the admin index's at-a-glance status (``templates/admin/index.html``, through the
``{% export_status %}`` tag of ``exports.templatetags.export_status``): a few queries for any
number of companies.

Per company: the last check and its outcome, the job in progress with its expiry countdown (at
risk when less than a quarter of ``expiresIn`` is left, or it is past), failures (error audit
entries) in the last 24 hours, the failing state of the company or of its failing job (or the
reason of a failed last outcome: never a company shown as fine while its job is failing), a
credential that needs re-authorisation (or is invalid), and a Xero connection that needs
re-authorisation (read with the companies, in the same query: no query more). Also
the request budget in use. Companies that need attention come first. A company-scoped user sees
the rows (and the budget lines) of their companies only. Outcomes read as words
(``exports.services.outcome_labels``); each count links to its filtered list, the budget lines
name credentials, and worker and poll health come from ``/healthz``'s checks
(``exports.selectors.index_panel``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count

from exports import clock
from exports.choices import XeroConnectionStatus
from exports.models import AuditEntry, Company, Credential, ExportJob
from exports.selectors import index_panel
from exports.selectors.company_access import queryset_for_user
from exports.selectors.failing import failing_text_for
from exports.services.outcome_labels import outcome_is_bad, outcome_label

MAX_ROWS = 50
# Outcomes that need a person (runs.Outcome.FAILURES), and "deferred".
ATTENTION_OUTCOMES = ("failed", "failed_job", "job_expired", "deferred")
PROBLEM_SHOWN = 240
AT_RISK_SHARE = 0.25  # as the lifecycle's "at risk" audit


@dataclass
class JobStatus:
    pk: int
    pleo_job_id: str
    deadline: datetime
    seconds_left: int
    at_risk: bool

    @property
    def countdown(self) -> str:
        left = self.seconds_left
        if left <= 0:
            return "expired"
        hours, rest = divmod(left, 3600)
        minutes, seconds = divmod(rest, 60)
        return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s"


@dataclass
class CompanyStatus:
    company: Company
    job: JobStatus | None = None
    failures_24h: int = 0
    credential_problem: str = ""
    # The company's Xero connection needs re-authorisation ("Reconnect Xero" on its page).
    xero_reauthorise: bool = False
    budget: str = ""
    # The failing state ("failing since …, 5 attempts, next retry at …, last error …"), of the
    # company or of its failing job; else the reason of a failed last outcome.
    problem: str = ""

    @property
    def outcome_label(self) -> str:
        return outcome_label(self.company.last_check_outcome)

    @property
    def outcome_is_bad(self) -> bool:
        return outcome_is_bad(self.company.last_check_outcome)

    @property
    def failures_url(self) -> str:
        return index_panel.company_failures_url(company_id=self.company.pk)

    @property
    def needs_attention(self) -> bool:
        return bool(
            (self.job and self.job.at_risk)
            or self.credential_problem
            or self.xero_reauthorise
            or self.failures_24h
            or self.problem
            or self.company.last_check_outcome in ATTENTION_OUTCOMES
            or self.company.unknown_status_job_id is not None
        )


@dataclass
class Status:
    rows: list[CompanyStatus] = field(default_factory=list)
    total_companies: int = 0
    jobs_in_progress: int = 0
    at_risk: int = 0
    failures_24h: int = 0
    reauthorise: int = 0
    xero_reauthorise: int = 0
    budget_lines: list[str] = field(default_factory=list)
    links: index_panel.PanelLinks | None = None
    health: list[index_panel.HealthLine] = field(default_factory=list)


def index_status_build(*, now: datetime | None = None, limit: int = MAX_ROWS, user=None) -> Status:
    """The status of every active company, or of those ``user`` may see when given."""
    from exports.services import budget

    now = now or clock.now()
    companies = Company.objects.filter(active=True)
    if user is not None:
        companies = queryset_for_user(queryset=companies, user=user)
    companies = list(companies.select_related("credential", "xero_connection").order_by("name"))
    status = Status(total_companies=len(companies))
    ids = [c.pk for c in companies]
    jobs: dict[int, JobStatus] = {}
    for job in (
        ExportJob.objects.filter(company_id__in=ids, status=ExportJob.Status.IN_PROGRESS)
        .order_by("created_at")
        .only("pk", "company_id", "pleo_job_id", "created_at", "last_updated_at", "expires_in")
    ):
        if job.company_id in jobs:
            continue
        deadline = (job.last_updated_at or job.created_at) + timedelta(seconds=job.expires_in)
        left = int((deadline - now).total_seconds())
        jobs[job.company_id] = JobStatus(
            pk=job.pk,
            pleo_job_id=str(job.pleo_job_id),
            deadline=deadline,
            seconds_left=left,
            at_risk=left < job.expires_in * AT_RISK_SHARE,
        )
    failures = dict(
        AuditEntry.objects.filter(
            company_id__in=ids,
            outcome=AuditEntry.Outcome.ERROR,
            created_at__gte=now - timedelta(days=1),
        )
        .values_list("company_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    failing_jobs = {}
    for job in (
        ExportJob.objects.filter(
            company_id__in=ids,
            failing_since__isnull=False,
            status__in=[ExportJob.Status.PENDING, ExportJob.Status.IN_PROGRESS],
        )
        .order_by("failing_since")
        .only(
            "company_id",
            "pleo_job_id",
            "status",
            "processing_state",
            "failing_since",
            "attempts",
            "next_retry_at",
            "last_error",
        )
    ):
        failing_jobs.setdefault(job.company_id, job)
    keys = {c.pk: budget.budget_key_for(credential=c.credential) for c in companies}
    usage = budget.budget_usage_for(keys=list(set(keys.values())))
    rows = []
    for company in companies:
        credential = company.credential
        problem = ""
        if credential.status == Credential.Status.NEEDS_REAUTHORISATION:
            problem = "needs re-authorisation"
        elif credential.status == Credential.Status.INVALID:
            problem = "invalid"
        found = usage.get(keys[company.pk])
        rows.append(
            CompanyStatus(
                company=company,
                job=jobs.get(company.pk),
                failures_24h=failures.get(company.pk, 0),
                credential_problem=problem,
                xero_reauthorise=_xero_needs_reauthorisation(company),
                budget=f"{found.used_this_minute}/{found.limit}" if found else "",
                problem=_problem(company, failing_jobs.get(company.pk)),
            )
        )
    status.jobs_in_progress = len(jobs)
    status.at_risk = sum(1 for job in jobs.values() if job.at_risk)
    status.failures_24h = sum(failures.values())
    status.reauthorise = len({row.company.credential_id for row in rows if row.credential_problem})
    status.xero_reauthorise = sum(1 for row in rows if row.xero_reauthorise)
    rows.sort(key=lambda row: (not row.needs_attention, row.company.name))
    status.rows = rows[:limit]
    status.budget_lines = index_panel.index_budget_lines(
        usage=usage, companies=companies, keys=keys
    )
    return status


def _xero_needs_reauthorisation(company: Company) -> bool:
    """From the connection read with the company (``select_related``): no query of its own."""
    connection = getattr(company, "xero_connection", None)  # None: not connected to Xero
    return (
        connection is not None and connection.status == XeroConnectionStatus.NEEDS_REAUTHORISATION
    )


def _problem(company: Company, failing_job: ExportJob | None) -> str:
    text = failing_text_for(obj=company)
    if not text and failing_job is not None:
        text = f"job {str(failing_job.pleo_job_id)[:8]}… {failing_text_for(obj=failing_job)}"
    if not text and company.last_check_outcome in ATTENTION_OUTCOMES:
        text = company.last_check_error
    text = " ".join(text.split())
    text = text[:1].upper() + text[1:]
    return text if len(text) <= PROBLEM_SHOWN else text[: PROBLEM_SHOWN - 1] + "…"


def index_status(*, user) -> Status:
    """The whole panel for ``user``: their companies' rows, where each count leads, and health."""
    status = index_status_build(user=user)
    status.links = index_panel.index_panel_links()
    status.health = index_panel.index_health_lines(user=user)
    return status
