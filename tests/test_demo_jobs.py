"""The demo's sandbox (exports/services/demo.py), in-process: Pleo's rate limit is switched on,
and new demo jobs respect Pleo's one-unfinished-job-per-company rule (409 on create)."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import pytest
from django.core.management.base import BaseCommand

from exports.services.demo import Demo
from tests.factories import make_sandbox_company

pytestmark = pytest.mark.django_db


def demo_for(sandbox) -> tuple[Demo, io.StringIO]:
    out = io.StringIO()
    command = BaseCommand(stdout=out, stderr=io.StringIO())
    demo = Demo(
        command=command,
        sandbox_port=urlsplit(sandbox.url).port,
        spawn=lambda *a: None,
        manage=lambda *a: [],
    )
    return demo, out


def test_the_demo_sandbox_has_pleos_rate_limit(pleo_sandbox):
    demo, _ = demo_for(pleo_sandbox)
    demo.configure_sandbox()
    assert pleo_sandbox.state.switches["rate_limit_per_minute"] == 600
    assert pleo_sandbox.state.switches["conflict_on_create"] is True


def test_demo_jobs_go_only_to_companies_without_an_unfinished_job(pleo_sandbox):
    state = pleo_sandbox.state
    busy_remote, busy = make_sandbox_company(pleo_sandbox, name="Busy")
    free_remote, free = make_sandbox_company(pleo_sandbox, name="Free")
    state.create_job(busy_remote.id, 1, notify=False)
    demo, out = demo_for(pleo_sandbox)
    demo.companies = [busy, free]
    demo.rng.sample = lambda population, k: list(population)  # the busy company is tried first
    demo._new_job()
    assert len(state.list_jobs(free_remote.id)) == 1
    assert len(state.list_jobs(busy_remote.id)) == 1
    assert "Free: a bookkeeper exported" in out.getvalue()
    assert "Busy:" not in out.getvalue()
    # Both busy now: nothing is created, nothing printed.
    before = out.getvalue()
    demo._new_job()
    assert out.getvalue() == before
    assert len(state.list_jobs()) == 2


def test_the_demo_books_its_first_company_in_the_local_xero(
    pleo_sandbox, xero_sandbox, settings, fresh_budget, monkeypatch
):
    """What ``serve`` does with PLEO_SANDBOX=1 and no Xero app configured, in process: the first
    demo company connected to the local Xero's organisation of its name; its jobs' codes mapped
    before the webhook; a job booked there as journals (at our Xero minute budget's pace, its
    waits moving the local Xero's clock instead of sleeping: ``VirtualWaits``)."""
    from exports.models import Company, Trigger, XeroConnection
    from exports.services.demo import xero_demo_environment
    from exports.services.start_flow import Outcome, company_check_run
    from tests import secrets_registry
    from tests.xero.support import VirtualWaits

    settings.PLEO_RATE_LIMIT_BACKEND = "database"
    VirtualWaits(xero_sandbox.state).install(monkeypatch, retry_after=False)

    settings.XERO_CLIENT_ID = ""
    settings.PUBLIC_BASE_URL = "http://testserver"
    xero_env = xero_demo_environment(xero_port=urlsplit(xero_sandbox.url).port, environ={})
    secrets_registry.register(xero_env["XERO_CLIENT_SECRET"])
    for name, value in xero_env.items():
        setattr(settings, name, value)
    settings.XERO_ALLOW_LOOPBACK = True
    out = io.StringIO()
    demo = Demo(
        command=BaseCommand(stdout=out, stderr=io.StringIO()),
        sandbox_port=urlsplit(pleo_sandbox.url).port,
        spawn=None,
        manage=None,
        xero_env=xero_env,
    )
    demo.seed(public_base_url="http://testserver")
    company = Company.objects.get(pk=demo.xero_company.pk)
    assert company.accounting_adapter == "xero"
    assert XeroConnection.objects.get(company=company).accounts.exists()  # synced
    demo.rng.sample = lambda population, k: [demo.xero_company]
    demo._new_job()
    result = company_check_run(company=company, trigger=Trigger.MANUAL)
    assert result.outcome == Outcome.COMPLETED, result.error
    tenant = xero_sandbox.state.tenant_by_name(company.name)
    assert xero_sandbox.state.documents(tenant.id)
