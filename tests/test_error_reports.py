"""Error reports (technical 500 page, admin mail) never show secret query parameters.

The OAuth callback URL carries ``code`` and ``state``; a report of an exception on that page (or
any page with such parameters) shows the cleansed substitute instead, with DEBUG on or off.
Ordinary query parameters are still shown.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys

import pytest
from django.core import mail
from django.urls import reverse
from django.utils.html import escape
from django.utils.log import AdminEmailHandler
from django.views.debug import get_default_exception_reporter_filter, get_exception_reporter_class

from exports.error_reports import SecretQueryExceptionReporter, SecretQueryReporterFilter
from tests import secrets_registry

SUBSTITUTE = SecretQueryReporterFilter.cleansed_substitute
CALLBACK = "/oauth/pleo/callback/"


def secret(prefix: str) -> str:
    return secrets_registry.register(f"{prefix}{secrets.token_urlsafe(18)}")


def fail_with(request):
    """Raise with ``request`` among the frame's variables, as a view would."""
    note = "an ordinary local"  # noqa: F841 (shown in the frame's variables)
    raise RuntimeError("something broke while handling the request")


def report(request) -> tuple[str, str]:
    """The text and HTML reports Django builds for an exception while handling ``request``."""
    try:
        fail_with(request)
    except RuntimeError:
        reporter = get_exception_reporter_class(request)(request, *sys.exc_info())
    return reporter.get_traceback_text(), reporter.get_traceback_html()


def squeezed(html: str) -> str:
    return re.sub(r"\s+", " ", html)


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


def test_the_settings_choose_the_cleansing_reporter_and_filter(rf):
    assert get_exception_reporter_class(rf.get("/")) is SecretQueryExceptionReporter
    assert isinstance(get_default_exception_reporter_filter(), SecretQueryReporterFilter)


def test_the_callback_code_and_state_are_not_in_the_report(rf, debug):
    code, state = secret("code-"), secret("state-")
    request = rf.get(CALLBACK, {"code": code, "state": state})
    for rendered in report(request):
        assert code not in rendered
        assert state not in rendered
    text, html = report(request)
    assert f"code = '{SUBSTITUTE}'" in text and f"state = '{SUBSTITUTE}'" in text
    assert f"Request URL: http://testserver{CALLBACK}?code={SUBSTITUTE}&state={SUBSTITUTE}" in text
    assert f'<td>code</td> <td class="code"><pre>&#x27;{SUBSTITUTE}&#x27;</pre>' in squeezed(html)


@pytest.mark.parametrize(
    "name", ["access_token", "refresh_token", "client_secret", "code_verifier", "id_token"]
)
def test_other_secret_parameters_are_cleansed_on_any_path(rf, debug, name):
    value = secret(f"{name}-")
    text, html = report(rf.get("/admin/exports/credential/", {name: value}))
    assert value not in text and value not in html
    assert f"{name} = '{SUBSTITUTE}'" in text


def test_short_secrets_are_cleansed_where_the_filter_is_asked(rf, debug):
    """Values too short for the last-guard search: the GET section, URL, META and frames."""
    state = "QzX9vW"  # shorter than MIN_SCRUBBED_LENGTH
    request = rf.get(CALLBACK, {"state": state, "page": "2"})
    for rendered in report(request):
        assert state not in rendered
    text, html = report(request)
    assert f"QUERY_STRING = 'state={SUBSTITUTE}&page=2'" in text
    # The request among the frame's variables is shown with the cleansed URL.
    shown = f"<WSGIRequest: GET '{CALLBACK}?state={SUBSTITUTE}&page=2'>"
    assert f'<td>request</td> <td class="code"><pre>{escape(shown)}</pre>' in squeezed(html)


def test_ordinary_get_parameters_are_still_shown(rf, debug):
    code = secret("code-")
    request = rf.get(
        CALLBACK,
        {"code": code, "page": "7", "q": "visible-search-term", "country_code": "ordinary-DK"},
    )
    text, html = report(request)
    assert code not in text and code not in html
    for rendered in (text, html):
        assert "visible-search-term" in rendered
        assert "ordinary-DK" in rendered
    assert "q = 'visible-search-term'" in text
    assert "page = '7'" in text
    assert "country_code = 'ordinary-DK'" in text
    local = '<td>note</td> <td class="code"><pre>&#x27;an ordinary local&#x27;</pre>'
    assert local in squeezed(html)
    assert "q=visible-search-term" in text  # the request URL keeps ordinary parameters


def test_the_debug_500_page_of_the_callback_does_not_show_the_code(
    admin_client, settings, monkeypatch
):
    settings.DEBUG = True
    code, state = secret("code-"), secret("state-")

    def broken(session, key=None):
        raise RuntimeError("the session store failed")

    monkeypatch.setattr("exports.consent_views.attempts_pending", broken)
    admin_client.raise_request_exception = False
    response = admin_client.get(reverse("pleo-oauth-callback"), {"code": code, "state": state})
    assert response.status_code == 500
    page = response.content.decode()
    assert "the session store failed" in page  # Django's technical 500 page
    assert code not in page and state not in page
    assert SUBSTITUTE in page


def mail_admins_about(request, fail) -> None:
    """Mail the admins about the exception ``fail()`` raises while serving ``request``, as
    Django's ``django.request`` logger does for a 500."""
    try:
        fail()
    except Exception:
        record = logging.LogRecord(
            "django.request",
            logging.ERROR,
            __file__,
            1,
            "Internal Server Error: %s",
            (request.path,),
            sys.exc_info(),
        )
    else:
        raise AssertionError("fail() did not raise")
    record.request = request
    record.status_code = 500
    AdminEmailHandler(include_html=True).emit(record)


def test_the_admin_error_mail_does_not_show_the_code(rf, settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    code, state = secret("code-"), secret("state-")
    request = rf.get(CALLBACK, {"code": code, "state": state, "page": "visible-page"})
    mail_admins_about(request, lambda: fail_with(request))
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    html = message.alternatives[0][0]
    for rendered in (message.subject, message.body, html):
        assert code not in rendered and state not in rendered
    assert f"code = '{SUBSTITUTE}'" in message.body
    assert "visible-page" in message.body and "visible-page" in html
