"""Reconciliation report: what we reported successful to Pleo, against what the ledger holds now.

For one company and a period (the jobs this bridge claimed, by the day it claimed them), every
item we reported successful to Pleo is matched to its booking in the ledger by our external id,
through the adapter's ``read_back`` (``exports.adapters.base``; the journal reads its entries,
Xero its documents: ``exports.services.xero_read_back``). Each row gets one status:

``matched``           the booking is there, as we booked it
``present_not_compared`` the booking is there; what we kept when we booked it is not in the
                      ledger's terms (booked before the adapter read back: a Xero booking whose
                      summary is Pleo's total and codes), so only its existence is checked
``changed``           the booking's amount, currency or accounts differ from what we booked (the
                      adapter's ``booking_summary``, stored on the item's record when booked with
                      its ``booked_summary_source``; compared only when that is the adapter's
                      ``summary_source``)
``missing``           no booking under that external id: missing or deleted in the ledger (in
                      Xero: voided or deleted too)
``booked_twice``      the ledger holds another booking of the same Pleo expense, or two of our
                      jobs reported it with different bookings
``unknown_to_us``     Pleo holds the item as exported in one of our jobs, and we have no record
                      of reporting it successful
``ledger_unreadable`` the ledger could not be read now (Xero unreachable, the connection refused,
                      a limit spent: the reason is in the detail); nothing is known of it
``booked_by_hand``    reported with an operator's manual booking (``exports.settlement``): not in
                      the ledger's documents of the adapter by design; not checked
``unchecked``         the adapter cannot read its bookings back (or is not installed)
``pleo_unreadable``   Pleo's view of a job could not be read (its answer is in the detail)

The six from ``changed`` to ``ledger_unreadable``, and ``pleo_unreadable``, are *flagged*;
``matched``, ``present_not_compared``, ``booked_by_hand`` and ``unchecked`` are not. Pleo is asked
once per job (its items, all pages), through the company's credential and request budget; the ledger
once per adapter (the journal: three queries; Xero: one ``GET`` per kind of document per 25
bookings, 1,000 journals in 40 calls, through the connection's budgets). ``reconciliation_report``
writes nothing of its own (each Xero call is audited as every Xero call is);
``reconciliation_notify_all`` (the monthly schedule) notifies the people of a company whose last
month has anything flagged.
"""

from __future__ import annotations

import csv
import io
import logging
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from exports import clock, pleo
from exports.adapters import (
    ReadBackUnavailable,
    ReadBackUnsupported,
    UnknownAdapter,
    get_adapter,
)
from exports.models import Company, ExportItemRecord, ExportJob
from exports.money import format_minor
from exports.notifications import service as notifications
from exports.notifications.kinds import Kind
from exports.services.credentials import CredentialUnusable, pleo_client_for_company
from exports.settlement.models import BY_HAND

logger = logging.getLogger(__name__)


class ReconStatus(StrEnum):
    MATCHED = "matched"
    PRESENT_NOT_COMPARED = "present_not_compared"
    CHANGED = "changed"
    MISSING = "missing"
    BOOKED_TWICE = "booked_twice"
    UNKNOWN_TO_US = "unknown_to_us"
    LEDGER_UNREADABLE = "ledger_unreadable"
    BOOKED_BY_HAND = "booked_by_hand"
    UNCHECKED = "unchecked"
    PLEO_UNREADABLE = "pleo_unreadable"


FLAGGED = frozenset(
    {
        ReconStatus.CHANGED,
        ReconStatus.MISSING,
        ReconStatus.BOOKED_TWICE,
        ReconStatus.UNKNOWN_TO_US,
        ReconStatus.LEDGER_UNREADABLE,
        ReconStatus.PLEO_UNREADABLE,
    }
)
CLAIMED = (ExportJob.Claim.OURS, ExportJob.Claim.ADOPTED)
NOT_COMPARED = (
    "booking(s) made before read-back: existence checked, amounts and accounts not compared "
    "(what was kept then is Pleo's total and codes, not the ledger's)."
)
CSV_COLUMNS = ("status", "accounting_entry_id", "pleo_job_id", "external_id", "booked", "ledger")


@dataclass(frozen=True)
class ReconRow:
    status: ReconStatus
    accounting_entry_id: uuid.UUID | None
    pleo_job_id: uuid.UUID
    external_id: str = ""
    booked: str = ""
    ledger: str = ""
    detail: str = ""

    @property
    def flagged(self) -> bool:
        return self.status in FLAGGED

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "accounting_entry_id": str(self.accounting_entry_id or ""),
            "pleo_job_id": str(self.pleo_job_id),
            "external_id": self.external_id,
            "booked": self.booked,
            "ledger": self.ledger,
            "detail": self.detail,
        }


@dataclass
class ReconReport:
    company: Company
    date_from: date
    date_to: date
    jobs: int = 0
    rows: list[ReconRow] = field(default_factory=list)

    @property
    def flagged(self) -> list[ReconRow]:
        return [row for row in self.rows if row.flagged]

    @property
    def ok(self) -> bool:
        return not self.flagged

    @property
    def not_compared(self) -> int:
        """Bookings found whose amounts were not compared (``present_not_compared``)."""
        return sum(row.status == ReconStatus.PRESENT_NOT_COMPARED for row in self.rows)

    def totals(self) -> dict[str, int]:
        counts = Counter(row.status for row in self.rows)
        return {str(status): counts.get(status, 0) for status in ReconStatus}

    def as_dict(self) -> dict[str, Any]:
        return {
            "company": str(self.company.pk),
            "pleo_company_id": str(self.company.pleo_company_id),
            "from": self.date_from.isoformat(),
            "to": self.date_to.isoformat(),
            "jobs": self.jobs,
            "ok": self.ok,
            "totals": self.totals(),
            "flagged": len(self.flagged),
            "rows": [row.as_dict() for row in self.rows],
        }

    def csv_text(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([*CSV_COLUMNS, "detail"])
        for row in self.rows:
            values = row.as_dict()
            writer.writerow([*(values[column] for column in CSV_COLUMNS), row.detail])
        return out.getvalue()


def _shown(amount, currency, accounts) -> str:
    if amount is None:
        return ""
    return f"{format_minor(amount, currency)} {currency} on {accounts or 'no account'}"


def reconciliation_report(*, company: Company, date_from: date, date_to: date) -> ReconReport:
    """The report for ``company`` over the jobs it claimed from ``date_from`` to ``date_to``."""
    report = ReconReport(company=company, date_from=date_from, date_to=date_to)
    jobs = list(
        ExportJob.objects.filter(
            company=company,
            claim__in=CLAIMED,
            claimed_at__date__gte=date_from,
            claimed_at__date__lte=date_to,
        ).order_by("claimed_at", "pk")
    )
    report.jobs = len(jobs)
    records = list(
        ExportItemRecord.objects.filter(
            export_job__in=jobs, result=ExportItemRecord.Result.SUCCESSFUL
        )
        .select_related("export_job")
        .order_by("pk")
    )
    reported = [r for r in records if r.state == ExportItemRecord.State.REPORTED]
    report.rows.extend(_ledger_rows(company, reported))
    report.rows.extend(_pleo_rows(company, jobs, records))
    return report


def _ledger_rows(company: Company, records: list[ExportItemRecord]) -> list[ReconRow]:
    bookings: dict[uuid.UUID, set[str]] = defaultdict(set)
    for record in records:
        if record.adapter != BY_HAND:
            bookings[record.accounting_entry_id].add(record.external_id)
    by_adapter: dict[str, list[ExportItemRecord]] = defaultdict(list)
    rows = []
    for record in records:
        if record.adapter == BY_HAND:
            rows.append(_row(record, ReconStatus.BOOKED_BY_HAND, "Reported with a manual booking."))
        else:
            by_adapter[record.adapter].append(record)
    for name, group in by_adapter.items():
        try:
            adapter = get_adapter(name, company=company)
            documents = adapter.read_back([record.external_id for record in group])
        except (UnknownAdapter, ReadBackUnsupported) as exc:
            detail = f"The adapter '{name}' cannot read its bookings back ({exc})."
            rows.extend(_row(record, ReconStatus.UNCHECKED, detail) for record in group)
            continue
        except ReadBackUnavailable as exc:
            detail = f"{adapter.label} could not be read: {exc}"
            rows.extend(_row(record, ReconStatus.LEDGER_UNREADABLE, detail) for record in group)
            continue
        for record in group:
            comparable = _comparable(adapter, record)
            rows.append(_compare(record, documents.get(record.external_id), bookings, comparable))
    return rows


def _row(record: ExportItemRecord, status: ReconStatus, detail: str, ledger="") -> ReconRow:
    return ReconRow(
        status=status,
        accounting_entry_id=record.accounting_entry_id,
        pleo_job_id=record.export_job.pleo_job_id,
        external_id=record.external_id,
        booked=_shown(record.booked_amount, record.booked_currency, record.booked_accounts),
        ledger=ledger,
        detail=detail,
    )


def _comparable(adapter, record: ExportItemRecord) -> bool:
    """Whether the summary kept on ``record`` is in the terms ``adapter.read_back`` answers in:
    its recorded source, else what the adapter's summaries were before the source was kept."""
    source = record.booked_summary_source or adapter.unrecorded_summary_source
    return source == adapter.summary_source


def _compare(record: ExportItemRecord, document, bookings, comparable: bool = True) -> ReconRow:
    if document is None:
        return _row(
            record,
            ReconStatus.MISSING,
            f"No booking {record.external_id} in the ledger: missing, or deleted since we "
            f"booked it.",
        )
    now = document.summary
    ledger = _shown(now.amount, now.currency, now.accounts_text)
    others = sorted(
        set(document.duplicates) | (bookings[record.accounting_entry_id] - {record.external_id})
    )
    if others:
        return _row(
            record,
            ReconStatus.BOOKED_TWICE,
            f"The same Pleo expense is also booked as {', '.join(others)}.",
            ledger,
        )
    if not comparable:
        return _row(
            record,
            ReconStatus.PRESENT_NOT_COMPARED,
            "Booked before read-back: existence checked, amounts not compared (the summary kept "
            "then is Pleo's total and account codes, not the document's).",
            ledger,
        )
    changes = []
    if record.booked_amount is not None:
        if (now.amount, now.currency) != (record.booked_amount, record.booked_currency):
            changes.append("the amount")
        if now.accounts_text != record.booked_accounts:
            changes.append("the accounts")
    if changes:
        return _row(
            record,
            ReconStatus.CHANGED,
            f"{' and '.join(changes).capitalize()} changed in the ledger since we booked it.",
            ledger,
        )
    detail = "" if record.booked_amount is not None else "Booked before amounts were kept."
    return _row(record, ReconStatus.MATCHED, detail, ledger)


def _pleo_rows(company: Company, jobs: list[ExportJob], records) -> list[ReconRow]:
    """Items Pleo holds as exported in our jobs that we have no successful record of."""
    if not jobs:
        return []
    ours = {(r.export_job_id, r.accounting_entry_id) for r in records}
    rows = []
    try:
        client = pleo_client_for_company(company=company, run_id=None)
    except CredentialUnusable as exc:
        return [ReconRow(ReconStatus.PLEO_UNREADABLE, None, jobs[0].pleo_job_id, detail=str(exc))]
    with client:
        for job in jobs:
            try:
                items = client.list_export_job_items(job.pleo_job_id)
            except pleo.PleoError as exc:
                rows.append(
                    ReconRow(
                        ReconStatus.PLEO_UNREADABLE,
                        None,
                        job.pleo_job_id,
                        detail=f"Pleo's items of the job could not be read: {exc}",
                    )
                )
                if isinstance(exc, pleo.BudgetExhausted):
                    break
                continue
            for item in items:
                if item.status != pleo.ItemStatus.SUCCESSFUL:
                    continue
                if (job.pk, item.accounting_entry_id) in ours:
                    continue
                external = item.external_id or ""
                rows.append(
                    ReconRow(
                        ReconStatus.UNKNOWN_TO_US,
                        item.accounting_entry_id,
                        job.pleo_job_id,
                        external_id=external[:200],
                        detail="Pleo holds it as exported in this job; this bridge has no "
                        "record of booking it.",
                    )
                )
    return rows


# --- the monthly schedule ---------------------------------------------------------------------


def last_month(today: date) -> tuple[date, date]:
    end = today.replace(day=1) - timedelta(days=1)
    return end.replace(day=1), end


def reconciliation_notify_all(*, today: date | None = None) -> int:
    """Reconcile last month for every active company; notify where anything is flagged.
    Returns how many companies were flagged."""
    date_from, date_to = last_month(today or clock.now().date())
    flagged = 0
    for company in Company.objects.filter(active=True).select_related("credential"):
        try:
            report = reconciliation_report(company=company, date_from=date_from, date_to=date_to)
        except Exception:
            logger.exception("Reconciliation of %s failed", company.name)
            continue
        if report.ok:
            continue
        flagged += 1
        totals = {status: count for status, count in report.totals().items() if count}
        notifications.notification_request(
            kind=Kind.RECONCILIATION_FLAGGED,
            company=company,
            facts={
                "from": date_from.isoformat(),
                "to": date_to.isoformat(),
                "flagged": len(report.flagged),
                "totals": totals,
            },
        )
    return flagged
