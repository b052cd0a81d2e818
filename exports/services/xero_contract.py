"""``verify_xero_contract``: check what one company's Xero organisation answers against Xero's
published contract (``docs/xero-openapi/``) and the readings the product relies on, with
read-only calls.

Five ``GET`` requests through the product's own client for the company's connection (its
allow-list, token refresh, retries and audit apply): ``/connections``, then for the connection's
tenant ``Organisation``, ``Accounts``, ``TaxRates`` and ``TrackingCategories``. Each answer is
checked against its schema (:mod:`exports.xero.openapi`) and for what the product reads from it:
the tenant is one of the token's connections; the organisation has a base currency (three
letters); every account, tax rate and tracking category parses as :mod:`exports.xero.resources`
reads it, with a status the mapping understands (``ACTIVE`` is the only usable one). Nothing is
written to Xero; no token is printed. The organisation's minute budget is waited for up to
``INTERACTIVE_BUDGET_WAIT`` a call (:mod:`exports.services.xero_connections`); a longer wait (a
run is booking) stops the check with the budget's message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from exports.models import Company, XeroConnection
from exports.pleo import BudgetExhausted
from exports.pleo.contract import examples, match, mismatch, plural, skipped
from exports.services import xero_connections
from exports.services.contract import ContractReport
from exports.xero import openapi, resources
from exports.xero.errors import XeroError
from exports.xero.transport import ACCOUNTING_PATH

logger = logging.getLogger(__name__)

# The statuses the mapping reads (docs/xero-openapi/xero_accounting.yaml: AccountStatus, the
# TaxRate and TrackingCategory/TrackingOption Status enums).
KNOWN_STATUSES = {
    "Accounts": {"ACTIVE", "ARCHIVED", "DELETED"},
    "TaxRates": {"ACTIVE", "DELETED", "ARCHIVED", "PENDING"},
    "TrackingCategories": {"ACTIVE", "ARCHIVED", "DELETED"},
}
PARSERS: dict[str, tuple[str, Callable[[Any, str], Any]]] = {
    "Accounts": ("Accounts", resources.Account.from_api),
    "TaxRates": ("TaxRates", resources.TaxRate.from_api),
    "TrackingCategories": ("TrackingCategories", resources.TrackingCategory.from_api),
}


def _schema(report: ContractReport, check: str, body: Any, path: str) -> None:
    problems = openapi.response_errors(body, "GET", path, 200)
    schema = openapi.response_schema_name("GET", path)
    if problems:
        detail = f"{plural(len(problems), 'deviation')} from {schema}: {examples(problems)}"
        report.findings.append(mismatch(check, detail))
    else:
        report.findings.append(match(check, f"valid {schema}"))


def _readings(report: ContractReport, resource: str, body: Any) -> None:
    key, parse = PARSERS[resource]
    try:
        rows = resources.items_of(body, key)
        for i, row in enumerate(rows):
            parse(row, f"{key}[{i}]")
    except XeroError as exc:
        report.findings.append(mismatch(f"{resource}.parse", str(exc)))
        return
    report.findings.append(match(f"{resource}.parse", f"{plural(len(rows), 'row')} read"))
    statuses = {str(row.get("Status")) for row in rows if isinstance(row, dict)}
    unknown = sorted(statuses - KNOWN_STATUSES[resource])
    check = f"{resource}.status"
    if unknown:
        report.findings.append(mismatch(check, f"statuses we do not know: {examples(unknown)}"))
    else:
        report.findings.append(match(check, f"statuses {', '.join(sorted(statuses)) or 'none'}"))


def xero_contract_verify(*, company: Company) -> ContractReport:
    """Run every check for ``company``'s Xero connection; never raises for what Xero answers."""
    connection = XeroConnection.objects.filter(company=company).first()
    report = ContractReport(company=company, base_url="")
    problem = xero_connections.xero_connection_unusable_reason(connection=connection)
    if problem:
        report.stopped = problem
        return report
    client = xero_connections.xero_client(
        connection=connection,
        budget_wait=xero_connections.INTERACTIVE_BUDGET_WAIT,  # five calls, as many as the burst
        on_call=lambda method, path, _status: report.requests.append(f"{method} {path}"),
    )
    report.base_url = client.config.base_url
    try:
        with client:
            _run_checks(client, report, connection)
    except (XeroError, xero_connections.XeroConnectionUnusable, BudgetExhausted) as exc:
        report.stopped = f"Xero could not be read: {exc}"
    report.log("Xero", logger)
    return report


def _run_checks(client, report: ContractReport, connection: XeroConnection) -> None:
    add = report.findings.append
    body = client.get_json("/connections")
    _schema(report, "connections.schema", body, "/connections")
    tenants = {str(c.get("tenantId")) for c in body if isinstance(c, dict)}
    if str(connection.tenant_id) in tenants:
        add(match("connections.tenant", f"'{connection.tenant_name}' is a connection"))
    else:
        add(mismatch("connections.tenant", f"'{connection.tenant_name}' is not a connection"))

    body = client.accounting_json("Organisation")
    _schema(report, "Organisation.schema", body, f"{ACCOUNTING_PATH}/Organisation")
    try:
        organisation = resources.Organisation.from_api(resources.items_of(body, "Organisations")[0])
        currency = organisation.base_currency
    except (XeroError, IndexError) as exc:
        add(mismatch("Organisation.base_currency", f"not readable: {exc}"))
    else:
        if len(currency) == 3 and currency.isalpha() and currency.isupper():
            add(match("Organisation.base_currency", currency))
        else:
            add(mismatch("Organisation.base_currency", f"{currency!r} is no currency code"))

    for resource in PARSERS:
        params = {"includeArchived": "true"} if resource == "TrackingCategories" else None
        body = client.accounting_json(resource, params)
        _schema(report, f"{resource}.schema", body, f"{ACCOUNTING_PATH}/{resource}")
        _readings(report, resource, body)
    if not report.findings:
        add(skipped("answers", "nothing was checked"))


__all__ = ["xero_contract_verify"]
