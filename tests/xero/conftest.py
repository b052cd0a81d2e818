"""The Xero tests' fixtures."""

import pytest

from tests.xero.support import xero_settings  # noqa: F401


@pytest.fixture
def admin_client(client, django_user_model):
    """pytest-django's ``admin_client`` without hashing a password (a superuser logged in with
    ``force_login``): the same pages, a second less per test."""
    user = django_user_model.objects.create_superuser("xero-admin", "xero@example.com", None)
    client.force_login(user)
    return client
