"""The company form: a UUID-wide Pleo company id with a hint, the internal fields
read-only in a collapsed fieldset (none on the add page), "Check now (recover)" explained."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from exports.admin.forms import INTERNAL_FIELDS
from tests.factories import make_company, make_credential

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def _input(html: str, name: str) -> str:
    found = re.search(rf'<input[^>]*name="{name}"[^>]*>', html)
    assert found, name
    return found[0]


def test_the_pleo_company_id_field_fits_a_uuid_and_says_where_to_find_it(root):
    html = root.get(reverse("admin:exports_company_add")).content.decode()
    field = _input(html, "pleo_company_id")
    assert 'size="40"' in field and 'maxlength="36"' in field
    assert "vUUIDField" not in field  # the admin's narrow UUID input
    assert "companyId on every export job" in html


def test_the_add_form_holds_no_internal_field(root):
    html = root.get(reverse("admin:exports_company_add")).content.decode()
    for name in ("lease_holder", "lease_expires_at", "recheck_requested", "check_queued_at"):
        assert f"field-{name}" not in html, name
    assert "Internal state" not in html


def test_the_change_form_shows_internal_fields_read_only_in_a_collapsed_fieldset(root):
    company = make_company(lease_holder="worker-1", credential=make_credential())
    html = root.get(reverse("admin:exports_company_change", args=[company.pk])).content.decode()
    fieldsets = re.findall(r"<fieldset(.*?)</fieldset>", html, re.S)
    internal = [f for f in fieldsets if "Internal state (read-only)" in f]
    assert len(internal) == 1
    assert "collapse" in internal[0]
    for name in INTERNAL_FIELDS:
        assert f"field-{name}" in internal[0], name
        assert f'name="{name}"' not in html, name  # read-only: no input anywhere
    main = next(f for f in fieldsets if "field-pleo_company_id" in f)
    assert "field-lease_holder" not in main and "field-recheck_requested" not in main


def test_check_now_recover_is_explained_next_to_the_button(root):
    company = make_company()
    html = root.get(reverse("admin:exports_company_change", args=[company.pk])).content.decode()
    assert 'aria-describedby="check-now-help"' in html
    help_text = re.search(r'<p class="help" id="check-now-help".*?</p>', html, re.S)[0]
    assert "Check now (recover)" in help_text and "re-reads from Pleo" in help_text
