"""The index's status panel counts the Xero connections to re-authorise, as it counts the Pleo
credentials: active companies only, the user's companies only, read with the companies (no query
more), the count leading to the company list filtered to them and each row to its company page,
where "Reconnect Xero" is."""

from __future__ import annotations

import re

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from exports.models import Company, XeroConnection
from exports.selectors.index_status import index_status_build
from tests.factories import make_company
from tests.test_index_panel import href, index, listed
from tests.xero.support import make_connection

pytestmark = pytest.mark.django_db

NEEDS = XeroConnection.Status.NEEDS_REAUTHORISATION


def needing(company: Company) -> XeroConnection:
    found = make_connection(company)
    XeroConnection.objects.filter(pk=found.pk).update(status=NEEDS, last_error="refused")
    return found


@pytest.fixture
def scene() -> dict[str, Company]:
    companies = {
        name: make_company(name=name, active=name != "Gone")
        for name in ("Lapsed", "Also lapsed", "Connected", "No Xero", "Gone")
    }
    needing(companies["Lapsed"])
    needing(companies["Also lapsed"])
    make_connection(companies["Connected"])
    needing(companies["Gone"])  # inactive: not on the panel
    return companies


def test_the_panel_counts_active_companies_whose_xero_connection_needs_it(admin_client, scene):
    status = index_status_build()
    assert status.xero_reauthorise == 2
    rows = {row.company.name: row for row in status.rows}
    assert [name for name, row in rows.items() if row.xero_reauthorise] == [
        "Also lapsed",
        "Lapsed",
    ]
    assert rows["Lapsed"].needs_attention and not rows["Connected"].needs_attention
    assert not rows["No Xero"].xero_reauthorise and status.reauthorise == 0

    page = index(admin_client)
    assert re.search(
        r'class="bad" id="status-xero"><a [^>]+>2 Xero connections to reconnect<', page
    )
    fixed_where = listed(admin_client, href(page, "status-xero"))
    assert sorted(c.name for c in fixed_where) == ["Also lapsed", "Lapsed"]
    for name in ("Lapsed", "Also lapsed"):  # each row leads to its company page
        company_page = reverse("admin:exports_company_change", args=[scene[name].pk])
        assert f'data-xero-reauthorise href="{company_page}"' in page
    assert page.count("data-xero-reauthorise") == 2


def test_none_to_reconnect_reads_zero_and_is_not_marked(admin_client):
    make_connection(make_company(name="Connected"))
    page = index(admin_client)
    assert re.search(r'class="" id="status-xero"><a [^>]+>0 Xero connections to reconnect<', page)
    assert "data-xero-reauthorise" not in page


def test_the_xero_count_adds_no_query(scene):
    """The connections come with the companies (one join): the panel's queries are the same
    with or without Xero connections, and stay flat with more companies (the pinned figure of
    tests/test_admin_status.py holds)."""

    def count() -> int:
        with CaptureQueriesContext(db) as captured:
            index_status_build()
        return len(captured.captured_queries)

    XeroConnection.objects.all().delete()
    without = count()
    for company in scene.values():
        needing(company)
    for i in range(20):
        needing(make_company(name=f"More {i}"))
    assert index_status_build().xero_reauthorise == 24
    assert count() == without <= 5


def test_a_scoped_user_counts_and_is_led_to_their_companies_only(client):
    from tests.admin_scene import OUTSIDER, build_scene

    scene = build_scene()
    XeroConnection.objects.update(status=NEEDS)  # every company's, the outsiders' too
    client.force_login(scene.users["scoped"])
    page = index(client)
    assert "2 Xero connections to reconnect" in page and OUTSIDER not in page
    fixed_where = listed(client, href(page, "status-xero"))
    assert sorted(c.pk for c in fixed_where) == sorted(c.pk for c in scene.inside)
    assert index_status_build(user=scene.users["scoped"]).xero_reauthorise == 2

    client.force_login(scene.users["viewer"])
    page = index(client)
    assert "4 Xero connections to reconnect" in page
    assert len(listed(client, href(page, "status-xero"))) == 4


def test_the_company_lists_xero_filter_names_every_status():
    from exports.admin.filters import XeroStatusListFilter

    assert set(XeroStatusListFilter.LABELS) == set(XeroConnection.Status)
