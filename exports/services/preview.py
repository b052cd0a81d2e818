"""Preview (dry run) of a pending export job: which items would fail, why, and where to fix it.

Reads the job, its items and its export items from Pleo (``docs/pleo-export-api.md`` §3.6 and
§3.8: both can be read while the job is pending) and runs the company's accounting adapter on
them exactly as the lifecycle would before booking: the job's ``validate``, then for every open
item the "already booked?" check (``exports.services.settlement``: no Pleo call), the adapter's
``precheck`` and its ``attachment_limits`` on the receipts' declared sizes and types. Nothing is
booked, nothing is sent to Pleo (no ``started``, no item update), no record is written, and the
company's lease is never taken, so a preview neither holds nor delays a run. Its Pleo calls go
through the company's credential and request budget like any other: one list of pending jobs (or
one read of the named job), then the pages of items and of export items.

If Pleo refuses a read (a 4xx, say, because the job is no longer pending or Pleo does not serve
export items for it) or cannot be reached, the report is ``unavailable`` with Pleo's answer.

Run inline (admin, ``manage.py preview_export``): the operator waits for the answer, which is
not stored anywhere; the work is bounded by the job's pages (``PREVIEW_MAX_ITEMS`` at most, a
larger job is previewed in part and says so) and each call by the client's timeouts and bounded
retries.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from exports import pleo
from exports.adapters import (
    AdapterUnavailable,
    BookingRequest,
    ItemCheck,
    UnknownAdapter,
    ValidationResult,
    get_adapter,
)
from exports.models import Company
from exports.money import format_minor
from exports.services.credentials import CredentialUnusable, pleo_client_for_company
from exports.services.lifecycle_common import OPEN_ITEM
from exports.services.settlement import earlier_bookings_find

logger = logging.getLogger(__name__)

PREVIEW_MAX_ITEMS = 1000
Failure = pleo.ItemFailureReasonType

# Where a bookkeeper fixes an item that fails with each failure type.
FIX_IN_PLEO_EXPENSE = "the expense in Pleo (its account, tax code, tags, vendor or lines)"
FIX_IN_PLEO_SETTINGS = "Pleo's accounting settings (account, tax code and contra account mappings)"
FIX_RECEIPTS = "the expense's receipts in Pleo"
WHERE_TO_FIX = {
    Failure.ACCOUNT_UNKNOWN: FIX_IN_PLEO_EXPENSE,
    Failure.TAX_CODE_UNKNOWN: FIX_IN_PLEO_SETTINGS,
    Failure.TAG_UNKNOWN: FIX_IN_PLEO_EXPENSE,
    Failure.VENDOR_UNKNOWN: FIX_IN_PLEO_EXPENSE,
    Failure.VALIDATION_FAILURE: FIX_IN_PLEO_EXPENSE,
    Failure.MISSING_CONFIGURATION: FIX_IN_PLEO_SETTINGS,
    Failure.INVALID_CONFIGURATION: "the bridge's admin (Company → Accounting adapter)",
}


class PreviewStatus(StrEnum):
    PASSES = "passes"  # every item would be booked (or is booked already)
    FAILS = "fails"  # the job or some items would fail
    UNAVAILABLE = "unavailable"  # Pleo refused or could not be asked; see ``reason``
    NOTHING_PENDING = "nothing_pending"


@dataclass(frozen=True)
class PreviewItem:
    accounting_entry_id: uuid.UUID
    date: str
    description: str
    amount: str
    ok: bool
    failure_type: str = ""
    message: str = ""
    fix_where: str = ""
    link: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "accounting_entry_id": str(self.accounting_entry_id),
            "date": self.date,
            "description": self.description,
            "amount": self.amount,
            "ok": self.ok,
            "failure_type": self.failure_type,
            "message": self.message,
            "fix_where": self.fix_where,
            "link": self.link,
        }


@dataclass
class PreviewReport:
    company: Company
    status: PreviewStatus = PreviewStatus.UNAVAILABLE
    pleo_job_id: uuid.UUID | None = None
    reason: str = ""
    validation: ValidationResult | None = None
    items: list[PreviewItem] = field(default_factory=list)
    skipped_final: int = 0
    truncated: bool = False

    @property
    def failing(self) -> list[PreviewItem]:
        return [item for item in self.items if not item.ok]

    @property
    def ok(self) -> bool:
        return self.status in (PreviewStatus.PASSES, PreviewStatus.NOTHING_PENDING)

    def as_dict(self) -> dict[str, Any]:
        return {
            "company": str(self.company.pk),
            "pleo_company_id": str(self.company.pleo_company_id),
            "job_id": str(self.pleo_job_id) if self.pleo_job_id else None,
            "status": str(self.status),
            "reason": self.reason,
            "validation": None
            if self.validation is None
            else {
                "ok": self.validation.ok,
                "failure_type": str(self.validation.failure_type or ""),
                "message": self.validation.message,
            },
            "items": len(self.items),
            "failing": len(self.failing),
            "skipped_final": self.skipped_final,
            "truncated": self.truncated,
            "results": [item.as_dict() for item in self.items],
        }


class _Unavailable(Exception):
    pass


def job_preview(*, company: Company, pleo_job_id: uuid.UUID | str | None = None) -> PreviewReport:
    """Preview ``pleo_job_id`` (it must be pending), or the company's oldest pending job."""
    report = PreviewReport(company=company)
    try:
        client = pleo_client_for_company(company=company, run_id=None)
    except CredentialUnusable as exc:
        report.reason = str(exc)
        return report
    try:
        with client:
            _preview(client, company, pleo_job_id, report)
    except _Unavailable as exc:
        report.status, report.reason = PreviewStatus.UNAVAILABLE, str(exc)
    except pleo.BudgetExhausted as exc:
        report.status = PreviewStatus.UNAVAILABLE
        report.reason = (
            f"The company's Pleo request budget is spent; try again after "
            f"{exc.retry_at:%H:%M:%S} UTC."
        )
    except pleo.PleoError as exc:
        report.status = PreviewStatus.UNAVAILABLE
        answer = f"{exc.status} {exc.error_type or ''}".strip() if exc.status else "no answer"
        report.reason = f"Pleo refused or could not be reached ({answer}): {exc.message}"
    logger.info("Preview for %s: %s %s", company.name, report.status, report.reason)
    return report


def _preview(client, company, pleo_job_id, report: PreviewReport) -> None:
    if pleo_job_id is None:
        pending = client.list_export_jobs(
            company_id=company.pleo_company_id, statuses=[pleo.JobStatus.PENDING]
        )
        pending = [job for job in pending if job.status == pleo.JobStatus.PENDING]
        if not pending:
            report.status = PreviewStatus.NOTHING_PENDING
            report.reason = "No pending export job in Pleo for this company."
            return
        remote = min(pending, key=lambda job: job.created_at)
    else:
        remote = client.get_export_job(pleo_job_id)
    report.pleo_job_id = remote.id
    if remote.status != pleo.JobStatus.PENDING:
        raise _Unavailable(
            f"The job is {remote.raw_status} in Pleo, not pending: only a job waiting to be "
            f"exported can be previewed."
        )
    items = client.list_export_job_items(remote.id, limit=PREVIEW_MAX_ITEMS)
    export_items = {
        item.accounting_entry_id: item
        for item in client.list_export_items(remote.id, limit=PREVIEW_MAX_ITEMS)
    }
    report.truncated = remote.number_of_items > len(items)
    open_items = [item for item in items if item.status in OPEN_ITEM]
    report.skipped_final = len(items) - len(open_items)
    try:
        adapter = get_adapter(company.accounting_adapter, company=company, job=remote)
    except UnknownAdapter:
        raise _Unavailable(
            f"The accounting adapter '{company.accounting_adapter}' chosen for this company is "
            f"not installed; choose one in the admin."
        ) from None
    try:
        report.validation = adapter.validate(remote)
    except Exception as exc:
        logger.exception("Adapter %s failed to validate in a preview", adapter.name)
        report.validation = ValidationResult.failed(
            pleo.JobFailureReasonType.ACCOUNTING_SYSTEM_UNREACHABLE,
            f"Failed to reach the accounting system to check it ({type(exc).__name__}).",
        )
    earlier = earlier_bookings_find(
        company=company, adapter=adapter, entry_ids=[i.accounting_entry_id for i in open_items]
    )
    for item in open_items:
        data = export_items.get(item.accounting_entry_id)
        report.items.append(_item(adapter, remote, item, data, earlier))
    failing = not report.validation.ok or bool(report.failing)
    report.status = PreviewStatus.FAILS if failing else PreviewStatus.PASSES


def _item(adapter, remote, item, data, earlier) -> PreviewItem:
    entry_id = item.accounting_entry_id
    if data is None:
        return PreviewItem(
            entry_id,
            "",
            "",
            "",
            ok=False,
            failure_type=str(Failure.UNEXPECTED_FAILURE),
            message="Pleo returned no accounting data for this item.",
            fix_where="Pleo (export the expense again)",
        )
    raw = data.raw
    facts = {
        "date": f"{data.date:%Y-%m-%d}",
        "description": _describe(raw),
        "amount": _amount(raw),
        "link": _link(raw),
    }
    found = earlier.get(entry_id)
    if found is not None:
        return PreviewItem(entry_id, **facts, ok=True, message=f"Already {found.source}.")
    request = BookingRequest(item=raw, idempotency_key="preview", pleo_job_id=remote.id)
    try:
        check = adapter.precheck(request)
    except AdapterUnavailable as exc:
        check = ItemCheck.failed(
            Failure.ACCOUNTING_SYSTEM_UNREACHABLE, f"{adapter.label} is unreachable ({exc})."
        )
    except Exception as exc:
        logger.exception("Adapter %s failed checking an item in a preview", adapter.name)
        check = ItemCheck.failed(
            Failure.UNEXPECTED_FAILURE, f"Checking failed unexpectedly ({type(exc).__name__})."
        )
    if check.ok:
        files = raw.get("files") if isinstance(raw.get("files"), list) else []
        declared = [(f.get("size") or 0, f.get("type") or "") for f in files if isinstance(f, dict)]
        problems = adapter.attachment_limits.judge(declared)
        if problems:
            check = ItemCheck.failed(
                problems[0].failure_type, " ".join(problem.message for problem in problems)
            )
    if check.ok:
        return PreviewItem(entry_id, **facts, ok=True, message=check.message)
    failure_type = check.failure_type
    return PreviewItem(
        entry_id,
        **facts,
        ok=False,
        failure_type=str(failure_type),
        message=check.message,
        fix_where=WHERE_TO_FIX.get(
            failure_type,
            FIX_RECEIPTS if str(failure_type).startswith("receipt_") else adapter.label,
        ),
    )


def _describe(raw: dict) -> str:
    supplier = raw.get("supplier") if isinstance(raw.get("supplier"), dict) else {}
    parts = [
        str(raw.get("type") or ""),
        str(supplier.get("name") or ""),
        str(raw.get("note") or ""),
    ]
    return " – ".join(part for part in parts if part)[:200]


def _amount(raw: dict) -> str:
    try:
        wallet = raw["amount"]["inWalletCurrency"]
        return f"{format_minor(int(wallet['value']), wallet['currency'])} {wallet['currency']}"
    except (KeyError, TypeError, ValueError):
        return ""


def _link(raw: dict) -> str:
    try:
        link = raw["_links"]["web"]["exportItem"]
    except (KeyError, TypeError):
        return ""
    return link if isinstance(link, str) and link.startswith("https://") else ""
