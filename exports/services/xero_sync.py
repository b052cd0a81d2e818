"""Copy a Xero organisation's chart of accounts, tax rates, tracking categories (and, on demand,
contacts) into local tables, then propose mappings where the codes match.

Run on connect, from the admin ("Sync from Xero") and daily (the ``xero-sync-daily`` schedule,
``exports.tasks.xero_sync_daily``). Each sync is one audit entry with its counts (and one per
HTTP call, :func:`exports.services.xero_connections.xero_client`). Rows Xero no longer returns
are deleted; rows it returns are updated in place, so a mapping to an account that Xero archived
is seen as inactive, not lost.

The organisation's minute budget (:mod:`exports.services.xero_connections`) is waited for up to
``INTERACTIVE_BUDGET_WAIT`` a call (its burst of 5 is spent by a sync with contacts); a longer
wait (a run is booking at the minute's pace) stops the sync with a message saying so.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, fields

from django.db import transaction

from exports import audit, clock
from exports.models import (
    AuditEntry,
    AuditStep,
    Trigger,
    XeroAccount,
    XeroConnection,
    XeroContact,
    XeroTaxRate,
    XeroTrackingOption,
)
from exports.pleo import BudgetExhausted
from exports.services import xero_connections, xero_mapping
from exports.xero.errors import XeroError

logger = logging.getLogger(__name__)

AUDIT_STEP = AuditStep.XERO_SYNC


@dataclass(frozen=True)
class XeroSyncResult:
    ok: bool
    message: str
    counts: dict[str, int]


def _row(model, resource, **more) -> dict:
    """The fields of ``resource`` (a :mod:`exports.xero.resources` dataclass) that ``model`` has
    a column of the same name for, and ``more``; text cut to its column's ``max_length``."""
    columns = {f.name: f for f in model._meta.concrete_fields}
    values = {f.name: getattr(resource, f.name) for f in fields(resource) if f.name in columns}
    values.update(more)
    for name, value in values.items():
        if isinstance(value, str) and columns[name].max_length:
            values[name] = value[: columns[name].max_length]
    return values


def _replace(model, connection: XeroConnection, key: str, rows: list[dict]) -> int:
    """Upsert ``rows`` by ``key`` under ``connection``; delete the rest. Returns the count."""
    keep = []
    for row in rows:
        obj, _ = model.objects.update_or_create(
            connection=connection, **{key: row.pop(key)}, defaults=row
        )
        keep.append(obj.pk)
    model.objects.filter(connection=connection).exclude(pk__in=keep).delete()
    return len(keep)


def xero_sync_run(
    *,
    connection: XeroConnection,
    trigger: str = Trigger.MANUAL,
    include_contacts: bool = False,
    run_id: uuid.UUID | None = None,
) -> XeroSyncResult:
    """One sync of ``connection``'s organisation; never raises for Xero's answers (the result
    says what went wrong)."""
    company = connection.company
    problem = xero_connections.xero_connection_unusable_reason(connection=connection)
    if problem:
        return _finish(connection, trigger, run_id, XeroSyncResult(False, problem, {}))
    try:
        with xero_connections.xero_client(
            connection=connection,
            trigger=trigger,
            run_id=run_id,
            budget_wait=xero_connections.INTERACTIVE_BUDGET_WAIT,
        ) as client:
            organisation = client.organisation()
            accounts = client.accounts()
            tax_rates = client.tax_rates()
            categories = client.tracking_categories()
            contacts = client.contacts() if include_contacts else None
    except (XeroError, xero_connections.XeroConnectionUnusable) as exc:
        result = XeroSyncResult(False, f"Sync from Xero failed: {exc}", {})
        return _finish(connection, trigger, run_id, result)
    except BudgetExhausted as exc:  # nothing sent past it: another run is using the minute
        result = XeroSyncResult(False, f"Sync from Xero stopped: {exc}. Sync again later.", {})
        return _finish(connection, trigger, run_id, result)
    counts: dict[str, int] = {}
    with transaction.atomic():
        XeroConnection.objects.filter(pk=connection.pk).update(
            base_currency=organisation.base_currency[:3],
            tenant_name=organisation.name[:300] or connection.tenant_name,
        )
        counts["accounts"] = _replace(
            XeroAccount, connection, "account_id", [_row(XeroAccount, a) for a in accounts]
        )
        counts["tax rates"] = _replace(
            XeroTaxRate, connection, "tax_type", [_row(XeroTaxRate, t) for t in tax_rates]
        )
        options = [
            _row(
                XeroTrackingOption,
                o,
                category_id=c.category_id,
                category_name=c.name,
                category_status=c.status,
            )
            for c in categories
            for o in c.options
        ]
        counts["tracking options"] = _replace(XeroTrackingOption, connection, "option_id", options)
        if contacts is not None:
            counts["contacts"] = _replace(
                XeroContact, connection, "contact_id", [_row(XeroContact, c) for c in contacts]
            )
        counts["mappings proposed"] = xero_mapping.xero_mapping_propose(company=company)
    text = ", ".join(f"{n} {what}" for what, n in counts.items())
    message = f"Synced from Xero ({organisation.name}, {organisation.base_currency}): {text}."
    return _finish(connection, trigger, run_id, XeroSyncResult(True, message, counts))


def _finish(connection, trigger, run_id, result: XeroSyncResult) -> XeroSyncResult:

    XeroConnection.objects.filter(pk=connection.pk).update(
        last_sync_at=clock.now(), last_sync_result=result.message[:500]
    )
    audit.record(
        company=connection.company,
        trigger=trigger,
        step=AUDIT_STEP,
        message=result.message,
        run_id=run_id,
        outcome=AuditEntry.Outcome.OK if result.ok else AuditEntry.Outcome.WARNING,
    )
    return result


def xero_sync_all(*, trigger: str = Trigger.SCHEDULE) -> list[XeroSyncResult]:
    """Every usable connection of an active company, one after the other (the daily task)."""
    connections = XeroConnection.objects.select_related("company").filter(
        company__active=True, status=XeroConnection.Status.OK, tenant_id__isnull=False
    )
    return [xero_sync_run(connection=c, trigger=trigger) for c in connections]


__all__ = ["XeroSyncResult", "xero_sync_all", "xero_sync_run"]
