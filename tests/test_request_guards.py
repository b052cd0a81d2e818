"""Request content outside the webhook that made a 5xx or an ERROR line (the same class
of fault as at the webhook door): NUL in a query string (a 500 on PostgreSQL from an admin list
filter), a URL too long to be carried to the login page (ERROR from DisallowedRedirect)."""

import logging

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.factories import make_company

pytestmark = pytest.mark.django_db


def _errors(caplog):
    return [
        f"{r.name}: {r.getMessage()[:200]}" for r in caplog.records if r.levelno >= logging.ERROR
    ]


@pytest.fixture
def staff_client(db):
    make_company()
    client = Client(raise_request_exception=False)
    client.force_login(User.objects.create(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/admin/exports/webhookdelivery/?state__exact=%00",
        "/admin/exports/webhookdelivery/?event_type__exact=a%00",
        "/admin/exports/company/?last_check_outcome__exact=%00",
        "/admin/exports/credential/?status__exact=%00",
        "/oauth/pleo/callback/?state=%00&code=x",
    ],
)
def test_nul_in_the_query_string_is_400_before_any_view(staff_client, caplog, url):
    response = staff_client.get(url)
    assert response.status_code == 400
    assert b"NUL" in response.content
    assert _errors(caplog) == []


def test_the_same_filters_without_nul_still_answer(staff_client, caplog):
    response = staff_client.get("/admin/exports/webhookdelivery/?state__exact=ignored")
    assert response.status_code == 200
    assert _errors(caplog) == []


def test_a_url_too_long_for_the_login_redirect_is_400_logged_as_a_warning(db, caplog):
    """staff_member_required sends an anonymous visitor to the login page with the URL in
    ``next``; past 16 KiB Django refuses that redirect (400) and logged it at ERROR."""
    response = Client(raise_request_exception=False).get(
        "/oauth/pleo/callback/?state=a&error=" + "x" * 20_000
    )
    assert response.status_code == 400
    assert _errors(caplog) == []
    (record,) = [r for r in caplog.records if r.name == "django.security.DisallowedRedirect"]
    assert record.levelno == logging.WARNING
