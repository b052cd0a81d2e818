"""Benchmark 8: a full export of one job booked in Xero (the local Xero, ``xero_sandbox``).

A job of 1,000 items (200 with ``--quick``) from the Pleo sandbox, carried by ``check_exports``'
code path into the local Xero's DKK organisation as manual journals, with every receipt
attached. Printed: wall time, Xero calls by endpoint (documents go 50 a request; every receipt is
one call), Pleo calls, database queries per item, and what Xero's own limit (60 calls a minute per
organisation) and our minute budget's pace (``XERO_BUDGET``) make of those calls: the shortest
time such a job can take against a real Xero, and the time our budget paces it at.

Our request budgets and the sandbox's limits are raised for the measurement (so the figure is
the product's own cost); the last line turns the call count into minutes under the real limit
and under our budget (its burst, then its steady rate).

    .venv/bin/python bench/xero.py [--quick] [--database-url URL]
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from datetime import timedelta

from common import QueryCounter, header, parser, setup_django

ORGANISATION = "Nordlys ApS"
TARGETS = {
    "account": "429",
    "contra_account": "840",
    "tax_code": "INPUT",
    "tag": "Department/Sales",
}


def connect(company, xero):
    """The company connected to the local Xero's DKK organisation, synced, every code mapped."""
    from exports import clock, crypto
    from exports.models import Company, XeroConnection
    from exports.services.xero_sync import xero_sync_run

    tenant = xero.state.tenant_by_name(ORGANISATION)
    client = xero.state.add_oauth_client(redirect_uris=["http://localhost/cb"], name="bench")
    tokens = xero.state.oauth_issue_tokens(client, tenant_ids=[tenant.id])
    connection = XeroConnection.objects.create(
        company=company,
        tenant_id=uuid.UUID(tenant.id),
        tenant_name=ORGANISATION,
        scopes_granted=tokens["scope"],
        base_currency="DKK",
        access_token_ciphertext=crypto.encrypt(tokens["access_token"]),
        refresh_token_ciphertext=crypto.encrypt(tokens["refresh_token"]),
        access_token_expires_at=clock.now() + timedelta(seconds=1500),
    )
    assert xero_sync_run(connection=connection).ok
    Company.objects.filter(pk=company.pk).update(accounting_adapter="xero")
    return tenant


def map_codes(company, items) -> None:
    from exports.models import XeroMapping
    from exports.services.xero_mapping import pleo_codes_of_item

    codes = {(c.kind, c.code) for item in items for c in pleo_codes_of_item(item=item)}
    XeroMapping.objects.bulk_create(
        XeroMapping(company=company, kind=kind, pleo_code=code, xero_code=TARGETS[kind])
        for kind, code in codes
        if kind in TARGETS
    )


def export_once(pleo, xero, items: int):
    from django.db import connection

    from exports.models import Company, Trigger
    from exports.services.companies import company_add_or_update
    from exports.services.start_flow import company_check_run

    remote = pleo.state.add_company(f"Xero export {items}", currency="DKK")
    key = pleo.state.add_api_key(remote.id)
    saved = company_add_or_update(
        name=f"Xero export {items}",
        pleo_company_id=uuid.UUID(remote.id),
        api_key=key.key,
        api_base_url=pleo.url,
    )
    tenant = connect(saved.company, xero)
    job = pleo.state.create_job(remote.id, items, notify=False)
    map_codes(saved.company, pleo.state.export_items(job["id"]))
    receipts = sum(len(i["files"]) for i in pleo.state.export_items(job["id"]))
    pleo.state.clear_requests()
    xero.state.clear_requests()
    company = Company.objects.select_related("credential").get(pk=saved.company.pk)
    with QueryCounter(connection) as counted:
        started = time.perf_counter()
        result = company_check_run(company=company, trigger=Trigger.COMMAND_LINE)
        seconds = time.perf_counter() - started
    assert result.outcome == "completed", (result.outcome, result.error)
    assert len(xero.state.documents(tenant.id)) == items
    xero_calls = Counter(
        f"{e['method']} {_template(e['path'])}"
        for e in xero.state.requests()
        if "/api.xro/" in e["path"]
    )
    pleo_calls = sum(1 for e in pleo.state.requests() if not e["path"].startswith("/files/"))
    return seconds, xero_calls, pleo_calls, receipts, counted


def _template(path: str) -> str:
    path = re.sub(r"/Attachments/[^/]+$", "/Attachments/{name}", path)
    return re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "{id}", path)


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    setup_django(args.database_url, PLEO_SANDBOX="1", XERO_SANDBOX="1")
    from django.conf import settings

    from exports.services import budget, xero_connections
    from pleo_sandbox.server import SandboxServer
    from xero_sandbox.server import XeroSandboxServer

    header("Benchmark 8: full export of one job booked in Xero (the local Xero)")
    # The product's own cost: our budgets and the sandbox's limits out of the way.
    real = xero_connections.XERO_BUDGET
    xero_connections.XERO_BUDGET = budget.Rate(limit=10**6)
    xero_connections.XERO_DAY_BUDGET = budget.Rate(limit=10**7, window=86400.0)
    xero_connections.XERO_APP_BUDGET = budget.Rate(limit=10**6)
    pleo, xero = SandboxServer(seed=8), XeroSandboxServer()
    pleo.start()
    xero.start()
    xero.state.set_switches(minute_limit=10**6, day_limit=10**7, app_minute_limit=10**7)
    for name in ("XERO_API_BASE_URL", "XERO_IDENTITY_BASE_URL", "XERO_LOGIN_BASE_URL"):
        setattr(settings, name, xero.url)
    settings.XERO_ALLOW_LOOPBACK = True
    items = 200 if args.quick else 1000
    try:
        seconds, calls, pleo_calls, receipts, counted = export_once(pleo, xero, items)
        total = sum(calls.values())
        print(f"\nJob of {items:,} items ({receipts:,} receipts)")
        print(f"  wall time          : {seconds:7.2f} s ({seconds / items * 1000:.2f} ms an item)")
        print(f"  Xero calls         : {total}")
        for call, count in sorted(calls.items()):
            print(f"      {count:5d}  {call}")
        print(f"  Pleo calls         : {pleo_calls} (receipt downloads apart)")
        print(f"  DB queries         : {counted.count} = {counted.count / items:.2f} an item")
        if args.shapes:
            counted.show_shapes(per=items)
        floor = total / 60
        paced = real.seconds_for(backlog=0.0, calls=total) / 60
        print(
            f"  Under Xero's 60 calls a minute: at least {floor:.1f} min for these {total} "
            f"calls; at our minute budget ({real.limit} a minute, burst {real.burst}, then "
            f"{real.limit - real.burst} a minute): {paced:.1f} min"
        )
    finally:
        xero.stop()
        pleo.stop()


if __name__ == "__main__":
    main()
