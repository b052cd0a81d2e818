"""Error reports (technical 500 page with DEBUG, admin mail) never show the credentials of a URL.

``REDIS_URL`` and ``DATABASE_URL`` carry passwords; so may any URL-valued setting, nested in
dicts (``Q_CLUSTER["redis"]``, a cache's ``LOCATION``) or lists, ``request.META`` (``runserver``
copies the process environment into it) and a frame's variables. Hosts, ports and paths of the
same URLs are still shown.
"""

from __future__ import annotations

import secrets
import sys

import pytest
from django.core import mail
from django.urls import reverse
from django.views.debug import get_exception_reporter_class

from exports.error_reports import SecretQueryReporterFilter, cleanse_url_credentials
from tests import secrets_registry
from tests.test_error_reports import mail_admins_about

SUBSTITUTE = SecretQueryReporterFilter.cleansed_substitute


def password(prefix: str) -> str:
    # url-safe and without "-"/"_" runs that could be split by the percent-encoding.
    return secrets_registry.register(f"{prefix}{secrets.token_hex(12)}")


@pytest.fixture
def urls(settings, monkeypatch):
    """URL-valued settings and environment variables with passwords, as a deployment has them."""
    found = {
        "redis": password("RedisPw"),
        "database": password("DbPw"),
        "cache": password("CachePw"),
        "mail": password("MailPw"),
        "proxy": password("ProxyPw"),
    }
    redis_url = f"redis://:{found['redis']}@redis.internal:6379/0"
    database_url = f"postgres://bridge:{found['database']}@db.internal:5432/bridge"
    settings.REDIS_URL = redis_url
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": redis_url}
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"rediss://default:{found['cache']}@cache.internal:6380/1",
        }
    }
    settings.EMAIL_URL = f"smtp+tls://mailer:{found['mail']}@smtp.internal:587"
    settings.EXTRA_NOTIFIERS = [{"targets": (f"https://hook:{found['proxy']}@hooks.internal/x",)}]
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    found["redis_url"], found["database_url"] = redis_url, database_url
    return found


def fail_with(request, url):
    """Raise with ``request`` and a URL among the frame's variables, quoting it in the message."""
    connection_url = url  # noqa: F841 (shown in the frame's variables)
    raise ConnectionError(f"Error connecting to {url}: connection refused")


def report(request, url) -> tuple[str, str]:
    try:
        fail_with(request, url)
    except ConnectionError:
        reporter = get_exception_reporter_class(request)(request, *sys.exc_info())
    return reporter.get_traceback_text(), reporter.get_traceback_html()


def assert_no_password(rendered: str, urls: dict) -> None:
    for name in ("redis", "database", "cache", "mail", "proxy"):
        assert urls[name] not in rendered, name


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_no_url_password_in_settings_meta_frames_or_message(rf, settings, urls, debug):
    settings.DEBUG = debug
    # runserver's WSGI environ holds the process environment: META shows it.
    request = rf.get("/admin/", DATABASE_URL=urls["database_url"], REDIS_URL=urls["redis_url"])
    text, html = report(request, urls["redis_url"])
    for rendered in (text, html):
        assert_no_password(rendered, urls)
    # The URLs are still there, only their user information is hidden.
    assert f"REDIS_URL = 'redis://{SUBSTITUTE}@redis.internal:6379/0'" in text
    assert f"DATABASE_URL = 'postgres://{SUBSTITUTE}@db.internal:5432/bridge'" in text
    assert f"'redis': 'redis://{SUBSTITUTE}@redis.internal:6379/0'" in text  # Q_CLUSTER
    assert f"rediss://{SUBSTITUTE}@cache.internal:6380/1" in text  # CACHES, nested
    assert f"smtp+tls://{SUBSTITUTE}@smtp.internal:587" in text
    assert f"https://{SUBSTITUTE}@hooks.internal/x" in text  # in a tuple in a dict in a list
    assert "Error connecting to redis://" in text  # the message, its password removed


def test_the_debug_500_page_shows_no_url_password(admin_client, settings, urls, monkeypatch):
    settings.DEBUG = True

    def broken(session, key=None):
        raise RuntimeError("the session store failed")

    monkeypatch.setattr("exports.consent_views.attempts_pending", broken)
    admin_client.raise_request_exception = False
    response = admin_client.get(
        reverse("pleo-oauth-callback"),
        {"state": "x"},
        DATABASE_URL=urls["database_url"],
        REDIS_URL=urls["redis_url"],
    )
    assert response.status_code == 500
    page = response.content.decode()
    assert "the session store failed" in page  # Django's technical 500 page
    assert_no_password(page, urls)
    assert "redis.internal:6379/0" in page and "db.internal:5432/bridge" in page


def test_the_admin_error_mail_shows_no_url_password(rf, settings, urls):
    settings.ADMINS = [("Ops", "ops@example.com")]
    request = rf.get("/admin/", DATABASE_URL=urls["database_url"])
    mail_admins_about(request, lambda: fail_with(request, urls["database_url"]))
    (message,) = mail.outbox
    html = message.alternatives[0][0]
    for rendered in (message.subject, message.body, html):
        assert_no_password(rendered, urls)
    assert f"postgres://{SUBSTITUTE}@db.internal:5432/bridge" in message.body


@pytest.mark.parametrize(
    ("text", "cleansed"),
    [
        ("redis://:pw@h:6379/0", "redis://S@h:6379/0"),
        ("redis://user:p%40ss%2Fw@h/0", "redis://S@h/0"),  # percent-encoded
        ("redis://user:p@ss@h/0", "redis://S@h/0"),  # a raw "@" in the password
        ("https://token@sentry.example/1", "https://S@sentry.example/1"),
        ("a redis://u:p@h1/0 and amqp://v:q@h2// b", "a redis://S@h1/0 and amqp://S@h2// b"),
        ("['http://u:p@h/', 'x@y']", "['http://S@h/', 'x@y']"),
        ("https://example.com/a@b", "https://example.com/a@b"),
        ("ops@example.com", "ops@example.com"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_cleanse_url_credentials(text, cleansed):
    assert cleanse_url_credentials(text, "S") == cleansed
