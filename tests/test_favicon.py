"""Browsers ask every page for /favicon.ico; it answers with an icon, never 404."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

pytestmark = pytest.mark.django_db

ICO_MAGIC = b"\x00\x00\x01\x00"


def test_favicon_answers_with_a_small_cached_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert response.content.startswith(ICO_MAGIC) and len(response.content) < 4096
    assert "max-age" in response["Cache-Control"]
    assert client.head("/favicon.ico").status_code == 200
    assert client.post("/favicon.ico").status_code == 405


def test_an_admin_page_and_its_favicon_request_find_both(client):
    """What a browser does on every admin page: the page, then /favicon.ico (no <link> needed)."""
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    for url in (reverse("admin:index"), reverse("admin:exports_company_changelist")):
        assert client.get(url).status_code == 200
        assert client.get("/favicon.ico").status_code == 200
