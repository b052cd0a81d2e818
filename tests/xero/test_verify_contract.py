"""``manage.py verify_xero_contract`` against the local Xero: every answer matches Xero's files
and our readings (exit 0, GETs only); a status we do not read makes it exit 1; an unconnected
company stops it."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from exports.models import XeroConnection
from tests.factories import make_company
from tests.xero.test_sandbox_flow import connect, local_xero  # noqa: F401

pytestmark = pytest.mark.django_db


def run(company, *extra) -> tuple[int, str]:
    from io import StringIO

    out = StringIO()
    try:
        call_command(
            "verify_xero_contract", "--company", str(company.pleo_company_id), *extra, stdout=out
        )
    except CommandError as exc:
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()


def test_the_local_xero_matches_and_a_status_we_do_not_read_does_not(admin_client, local_xero):  # noqa: F811
    company = make_company(name="Contract Ltd")
    connect(admin_client, company, [local_xero.tenant])
    code, out = run(company, "--json")
    report = json.loads(out)
    assert code == 0, report
    assert report["ok"] and report["counts"]["mismatch"] == 0 and report["methods"] == ["GET"]
    assert report["requests"] == 5
    checks = {f["check"] for f in report["findings"]}
    assert {"connections.tenant", "Organisation.base_currency", "Accounts.status"} <= checks

    tenant = local_xero.tenant.id
    account = local_xero.state.tenant(tenant).account_by_code(
        local_xero.state.add_account(tenant, code="9999", name="Odd")["Code"]
    )
    account["Status"] = "FROZEN"  # a status Xero's files and our mapping do not know
    code, out = run(company)
    assert code == 1 and "MISMATCH" in out and "FROZEN" in out


def test_an_unconnected_company_stops_the_check():
    company = make_company(name="Nowhere Ltd")
    code, out = run(company)
    assert code == 1 and "not connected to Xero" in out
    assert not XeroConnection.objects.exists()
