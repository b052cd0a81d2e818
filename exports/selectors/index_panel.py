"""Reads for the admin index's status panel (``templates/admin/index.html``) besides the rows
themselves (``exports.selectors.index_status.index_status_build``): where each count leads, the
request-budget lines in words, and the worker's and the poll tick's health.

- Every count links to the list that shows what it counts, filtered (and, like every list,
  scoped to the user's companies). Xero connections to re-authorise lead to the active companies
  whose connection needs it (``exports.admin.filters.XeroStatusListFilter``): each is fixed on its
  company page ("Reconnect Xero").
- A budget line names the credentials that spend it, never the internal budget key.
- Health is ``/healthz``'s own checks (``exports.health``), run in-process: no HTTP call. The
  worker heartbeats and the poll tick are not tied to any company, so only users who see every
  company see them (``exports.selectors.company_access``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from urllib.parse import urlencode

from django.urls import reverse

from exports.choices import XeroConnectionStatus
from exports.selectors.company_access import user_sees_all_companies
from exports.services.budget import Scope

FAILURES_WINDOW = "24h"  # exports.admin.filters.AgeListFilter: the index counts the last day


def _changelist(model: str, **params: str) -> str:
    url = reverse(f"admin:exports_{model}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


@dataclass(frozen=True)
class PanelLinks:
    """The filtered list behind each count of the panel."""

    companies: str
    jobs_in_progress: str
    at_risk: str
    failures_24h: str
    reauthorise: str
    xero_reauthorise: str


def company_failures_url(*, company_id: int) -> str:
    """The audit list: this company's errors of the last day (what its failure count counts)."""
    params = {"company__id__exact": str(company_id), "outcome__exact": "error"}
    return _changelist("auditentry", **params, age=FAILURES_WINDOW)


# The job list's "at risk" filter (``exports.admin.filters.ExpiryRiskListFilter`` uses these).
EXPIRY_PARAMETER = "expiry"
EXPIRY_AT_RISK = "at_risk"
# The company list's Xero filter (``exports.admin.filters.XeroStatusListFilter`` uses it).
XERO_STATUS_PARAMETER = "xero_status"


def index_panel_links() -> PanelLinks:
    from exports.models import AuditEntry, Credential, ExportJob

    problems = ",".join([Credential.Status.NEEDS_REAUTHORISATION, Credential.Status.INVALID])
    return PanelLinks(
        companies=_changelist("company", active__exact="1"),
        jobs_in_progress=_changelist("exportjob", status__exact=ExportJob.Status.IN_PROGRESS),
        at_risk=_changelist("exportjob", **{EXPIRY_PARAMETER: EXPIRY_AT_RISK}),
        failures_24h=_changelist(
            "auditentry", outcome__exact=AuditEntry.Outcome.ERROR, age=FAILURES_WINDOW
        ),
        reauthorise=_changelist("credential", status__in=problems),
        xero_reauthorise=_changelist(
            "company",
            active__exact="1",
            **{XERO_STATUS_PARAMETER: XeroConnectionStatus.NEEDS_REAUTHORISATION},
        ),
    )


def index_budget_line(*, usage, label: str) -> str:
    """``Nordlys API key: 8 of 500 requests this minute (2 %)``: no internal key."""
    text = f"{label}: {usage.used_this_minute} of {usage.limit} requests this minute"
    text += f" ({usage.percent} %)"
    if usage.refused_this_minute:
        text += f", {usage.refused_this_minute} refused (runs deferred)"
    if usage.spent_until:
        text += f", spent until {usage.spent_until.astimezone(UTC):%H:%M:%S} UTC"
    return text


def index_budget_lines(
    *, usage: dict, companies, keys: dict[int, str], limit: int = 5
) -> list[str]:
    """One line per budget in use, busiest first, named after the credentials spending it."""
    names: dict[str, set[str]] = {}
    for company in companies:
        names.setdefault(keys[company.pk], set()).add(company.credential.name)
    lines = []
    for found in sorted(usage.values(), key=lambda u: (-u.used_this_minute, u.key))[:limit]:
        spenders = sorted(names.get(found.key, ()))
        if found.key == Scope.GLOBAL:  # the one key of the global scope
            label = "All credentials (one shared budget)"
        elif len(spenders) == 1:
            label = spenders[0]
        elif spenders:
            label = f"{', '.join(spenders[:3])}{' …' if len(spenders) > 3 else ''} (shared)"
        else:
            label = "Another credential"
        lines.append(index_budget_line(usage=found, label=label))
    return lines


@dataclass(frozen=True)
class HealthLine:
    name: str
    label: str
    ok: bool
    detail: str


HEALTH_LABELS = {"worker": "Worker", "tick": "Poll"}


def index_health_lines(*, user) -> list[HealthLine]:
    """The worker's and the poll tick's checks of ``/healthz``; empty for company-scoped users."""
    if not user_sees_all_companies(user=user):
        return []
    from exports import health

    checks = {"worker": health.check_worker, "tick": health.check_tick}
    lines = []
    for name, check in checks.items():
        result = check()
        lines.append(HealthLine(name, HEALTH_LABELS[name], result.ok, result.detail))
    return lines
