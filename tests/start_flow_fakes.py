"""Fakes for the detect-and-start flow's tests (``tests/test_start_flow.py``,
``tests/test_unknown_job_status.py``): HTTP faked at the transport (``responses``), a company
whose credential points at it, Pleo's jobs of that company, and one run of a check.

Import the fixtures by name (``company``, ``fake``) into a test module to use them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import responses

from exports import clock
from exports.models import Company, Trigger
from exports.services.start_flow import company_check_run
from tests.client_fakes import EVENTS as EVENTS  # re-exported for the tests
from tests.client_fakes import JOBS, URL, company_job_json, page
from tests.factories import make_company, make_credential

BASE = URL
LIST = JOBS


def job_json(company, *, created_minutes_ago=10, **extra):
    """A job of ``company`` created ``created_minutes_ago`` minutes ago (``status`` pending)."""
    created_at = clock.now() - timedelta(minutes=created_minutes_ago)
    return company_job_json(company.pleo_company_id, created_at=created_at, **extra)


@pytest.fixture
def company():
    return make_company(credential=make_credential(api_base_url=BASE))


@pytest.fixture
def fake():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        # The export lifecycle runs after a start: these jobs have no items to export.
        mock.get(re.compile(rf"{re.escape(LIST)}/[^/]+/items"), json=page([]))
        mock.get(f"{BASE}/v3/export-items", json=page([]))
        yield mock


def run(company, trigger=Trigger.SCHEDULE, **kwargs):
    return company_check_run(company=Company.objects.get(pk=company.pk), trigger=trigger, **kwargs)
