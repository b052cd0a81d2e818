"""Pleo credentials go to Pleo only.

The attack: a staff user who may change credentials (and is shown only a key's last 4 characters)
points a credential's API base URL at a host they control, leaves the key blank and runs a
check; the full key would arrive there in ``Authorization``. The allow-list
(``PLEO_ALLOWED_HOSTS``, https only, loopback only with DEBUG or PLEO_SANDBOX) is checked where a
URL comes in (admin form, ``add_company``, ``manage.py check``) and again in both HTTP clients
before any connection is opened; redirects are never followed.
"""

from __future__ import annotations

import base64
import socket
import threading

import pytest
import requests
import responses
from django.contrib.auth.models import Permission, User
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from exports import pleo
from exports.models import Company, Credential, Trigger
from exports.pleo import hosts
from exports.pleo import oauth as pleo_oauth
from exports.services import oauth as oauth_service
from exports.services.credentials import CredentialUnusable, pleo_client_for_credential
from exports.services.start_flow import Outcome, company_check_run
from tests import secrets_registry
from tests.admin_forms import credential_form
from tests.client_fakes import RawServer, answer
from tests.conftest import TEST_ENCRYPTION_KEY
from tests.factories import make_company, make_credential
from tests.oauth_support import make_oauth_credential

EVIL = "https://collector.evil.example"
PLEO = "https://external.pleo.io"
STAGING = "https://external.staging.pleo.io"
EMPTY_PAGE = {"data": [], "pagination": {"hasNextPage": False, "hasPreviousPage": False}}


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


# --- The rule itself -------------------------------------------------------------------------

PLEO_HOSTS = frozenset(hosts.DEFAULT_ALLOWED_HOSTS)


@pytest.mark.parametrize(
    "url",
    [
        "https://external.pleo.io",
        "https://external.pleo.io/",
        "https://EXTERNAL.Pleo.io",
        "https://external.pleo.io:443",
        "https://external.staging.pleo.io",
        "https://auth.pleo.io",
        "https://auth.staging.pleo.io",
    ],
)
def test_pleo_hosts_over_https_are_allowed(url):
    assert hosts.url_problem(url, hosts.HostPolicy(allowed_hosts=PLEO_HOSTS)) is None


@pytest.mark.parametrize(
    "url, why",
    [
        ("https://collector.evil.example", "not a Pleo host"),
        ("http://external.pleo.io", "must use https"),
        ("https://external.pleo.io.evil.example", "not a Pleo host"),  # suffix trick
        ("https://evil-external.pleo.io", "not a Pleo host"),
        ("https://pleo.io", "not a Pleo host"),
        ("https://external.pleo.io@evil.example", "user name or password"),  # userinfo trick
        ("https://key:pw@external.pleo.io", "user name or password"),
        ("https://external.pleo.io%40evil.example", "not a Pleo host"),
        ("https://evil.example#@external.pleo.io", "fragment"),
        ("https://evil.example?@external.pleo.io", "query"),
        ("https://evil.example\\@external.pleo.io", "backslash"),
        ("https://external.pleo.io\\@evil.example", "backslash"),
        ("https://external.pleo.io\t.evil.example", "whitespace"),
        ("https://external.pleo.io.", "not a Pleo host"),  # trailing dot: exact names only
        ("https://external.pleo.io:8443", "must not name a port"),
        ("https://external.pleo.io:80", "must not name a port"),
        ("https://external.pleo.io:99999", "not a valid URL"),
        ("ftp://external.pleo.io", "must start with https://"),
        ("ftp://x", "must start with https://"),
        ("external.pleo.io", "must start with https://"),
        ("//external.pleo.io", "must start with https://"),
        ("https:///external.pleo.io", "names no host"),
        ("", "no URL"),
        ("http://127.0.0.1:8765", "loopback"),  # not without DEBUG or PLEO_SANDBOX
        ("http://localhost:8765", "loopback"),
        ("http://[::1]:8765", "loopback"),
        ("http://127.1", "not a Pleo host"),  # short forms are not taken for loopback
        ("http://2130706433", "not a Pleo host"),
    ],
)
def test_everything_else_is_refused_with_a_reason(url, why):
    problem = hosts.url_problem(url, hosts.HostPolicy(allowed_hosts=PLEO_HOSTS))
    assert problem and why in problem
    assert "pw@" not in problem and "key:" not in problem  # userinfo is never repeated


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8765", "http://127.3.4.5", "http://localhost:1", "http://[::1]:9"]
)
def test_loopback_only_when_allowed(url):
    assert hosts.url_problem(url, hosts.HostPolicy(allowed_hosts=PLEO_HOSTS)) is not None
    policy = hosts.HostPolicy(allowed_hosts=PLEO_HOSTS, allow_loopback=True)
    assert hosts.url_problem(url, policy) is None


def test_the_settings_give_the_default_list_and_loopback_only_in_development(settings):
    # settings_test runs with DEBUG=1 at load and adds the tests' fake hosts.
    assert set(hosts.DEFAULT_ALLOWED_HOSTS) <= set(settings.PLEO_ALLOWED_HOSTS)
    assert settings.PLEO_ALLOW_LOOPBACK is True
    settings.PLEO_ALLOW_LOOPBACK = False
    assert "loopback" in hosts.policy_from_settings().problem("http://127.0.0.1:1")


@pytest.mark.parametrize(
    "debug, sandbox, loopback",
    [("0", "0", False), ("0", "1", True), ("1", "0", True)],
)
def test_settings_default_to_pleo_hosts_and_loopback_only_with_debug_or_sandbox(
    debug, sandbox, loopback, monkeypatch
):
    """The settings module itself, executed afresh with this environment (no .env read)."""
    import runpy

    import pleo_integration.settings as product_settings

    for name in ("PLEO_ALLOWED_HOSTS", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOTENV_FILE", "/nonexistent/.env")
    monkeypatch.setenv("DEBUG", debug)
    monkeypatch.setenv("PLEO_SANDBOX", sandbox)
    monkeypatch.setenv("SECRET_KEY", "s")
    monkeypatch.setenv("CREDENTIALS_ENCRYPTION_KEYS", TEST_ENCRYPTION_KEY)
    loaded = runpy.run_path(product_settings.__file__)
    assert loaded["PLEO_ALLOWED_HOSTS"] == [
        "external.pleo.io",
        "external.staging.pleo.io",
        "auth.pleo.io",
        "auth.staging.pleo.io",
    ]
    assert loaded["PLEO_ALLOW_LOOPBACK"] is loopback
    monkeypatch.setenv("PLEO_ALLOWED_HOSTS", " External.Pleo.io , ,auth.pleo.io")
    loaded = runpy.run_path(product_settings.__file__)
    assert loaded["PLEO_ALLOWED_HOSTS"] == ["external.pleo.io", "auth.pleo.io"]


def check_findings() -> set[tuple[str, str]]:
    """The system checks' findings about ``exports``: (check id, the setting the message names
    first). The Xero allow-list's test reads them the same way."""
    return {(e.id, e.msg.split(" ")[0]) for e in checks.run_checks() if e.id.startswith("exp")}


def test_system_check_refuses_pleo_urls_and_entries_that_cannot_match(settings):
    settings.PLEO_API_BASE_URL = "http://external.pleo.io"
    settings.PLEO_OAUTH_BASE_URL = EVIL
    settings.PLEO_ALLOWED_HOSTS = [*settings.PLEO_ALLOWED_HOSTS, "https://auth.pleo.io"]
    found = check_findings()
    assert ("exports.E102", "PLEO_API_BASE_URL") in found
    assert ("exports.E102", "PLEO_OAUTH_BASE_URL") in found
    assert ("exports.E101", "PLEO_ALLOWED_HOSTS:") in found


@pytest.mark.django_db
def test_database_check_names_stored_credentials_with_a_refused_url():
    kept = make_credential(name="Fine", api_base_url=STAGING)
    bad = make_credential(name="Old row")
    Credential.objects.filter(pk=bad.pk).update(api_base_url="http://collector.evil.example")
    warnings = [w for w in checks.run_checks(databases=["default"]) if w.id == "exports.W101"]
    assert [w.msg.split(":")[0] for w in warnings] == [f"Credential {bad.pk} (Old row)"]
    assert str(kept.pk) not in warnings[0].msg.split(":")[0]
    assert not [w for w in checks.run_checks() if w.id == "exports.W101"]  # only with --database


@pytest.mark.subprocess
def test_manage_py_migrate_on_a_fresh_database_still_runs(tmp_path):
    """``migrate`` runs the database checks before any table exists (call_command skips them)."""
    from tests import processes

    env = processes.settings_env(
        without=("REDIS_URL",), DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    )
    done = processes.run(processes.manage("migrate", "--noinput"), env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# --- The admin form --------------------------------------------------------------------------


@pytest.fixture
def editor(client, db):
    """Staff who may view and change credentials (sees only a key's last 4 characters)."""
    user = User.objects.create(username="editor", is_staff=True)  # no password hashing: fast
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=[
                "view_credential",
                "change_credential",
                "view_company",
                "check_now",
                "view_all_companies",
            ]
        )
    )
    client.force_login(user)
    return client


def _post(client, credential, **fields):
    data = credential_form(credential, **fields)
    return client.post(reverse("admin:exports_credential_change", args=[credential.pk]), data)


def test_editor_cannot_point_a_stored_key_at_another_host(editor):
    """The reported attack, step 1: the form refuses the URL (key left blank)."""
    key = secrets_registry.register("pk_live_the_whole_key_9876")
    credential = make_credential(api_key=key, api_base_url="")
    response = _post(editor, credential, api_base_url=EVIL)
    assert response.status_code == 200, "the form must not be saved"
    page = response.content.decode()
    assert "not a Pleo host" in page
    assert key not in page
    credential.refresh_from_db()
    assert credential.api_base_url == ""


@pytest.mark.parametrize(
    "url, why",
    [
        ("http://external.pleo.io", "must use https"),  # plain http to a non-loopback host
        ("https://external.pleo.io.evil.example", "not a Pleo host"),
        ("https://external.pleo.io:8443", "must not name a port"),
        ("ftp://external.pleo.io", "must start with https://"),
        (PLEO + "/" + "v" * 200, "at most 200"),  # the column's length (PostgreSQL: DataError)
    ],
)
def test_form_refuses_urls_outside_the_rule_even_with_a_new_key(editor, url, why):
    credential = make_credential(api_base_url="")
    new_key = secrets_registry.register("pk_test_new_key_entered_5555")
    response = _post(editor, credential, api_base_url=url, api_key=new_key)
    assert response.status_code == 200
    assert why in response.content.decode()
    credential.refresh_from_db()
    assert credential.api_base_url == ""


def test_changing_the_base_url_needs_the_secret_again(editor):
    key = secrets_registry.register("pk_test_stored_key_0001")
    credential = make_credential(api_key=key, api_base_url=PLEO)
    response = _post(editor, credential, api_base_url=STAGING)
    assert response.status_code == 200
    assert "enter the API key again" in response.content.decode()
    credential.refresh_from_db()
    assert credential.api_base_url == PLEO

    new_key = secrets_registry.register("pk_test_staging_key_0002")
    response = _post(editor, credential, api_base_url=STAGING, api_key=new_key)
    assert response.status_code == 302, response.content.decode()[:3000]
    credential.refresh_from_db()
    assert credential.api_base_url == STAGING and credential.api_key == new_key

    # Blank (the PLEO_API_BASE_URL setting) is a change too.
    assert _post(editor, credential, api_base_url="").status_code == 200
    # Other edits without touching the URL keep working without the key.
    assert _post(editor, credential, name="Renamed").status_code == 302


def test_changing_an_oauth_credentials_base_url_needs_its_client_secret(editor):
    credential = make_oauth_credential(
        access_token="at_hosts_1111", refresh_token="rt_hosts_1111", api_base_url=PLEO
    )
    from exports.services.companies import webhook_endpoint_ensure

    webhook_endpoint_ensure(credential=credential)
    response = _post(editor, credential, api_base_url=STAGING)
    assert response.status_code == 200
    assert "enter the OAuth client secret again" in response.content.decode()
    secret = secrets_registry.register("ocs_reentered_secret_2222")
    response = _post(editor, credential, api_base_url=STAGING, oauth_client_secret=secret)
    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.api_base_url == STAGING


# --- A stored URL outside the list (an old row, a shell): the run refuses it ---------------


@pytest.mark.django_db
def test_check_never_sends_an_api_key_to_a_stored_foreign_url():
    """The reported attack, step 2: even if the URL got stored, the check sends nothing."""
    key = secrets_registry.register("pk_live_the_whole_key_4321")
    company = make_company(credential=make_credential(api_key=key))
    Credential.objects.filter(pk=company.credential_id).update(api_base_url=EVIL)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{EVIL}/v3/export-jobs", json=EMPTY_PAGE)
        result = company_check_run(company=company, trigger=Trigger.MANUAL)
        assert [c.request.url for c in mock.calls] == []
    assert result.outcome == Outcome.FAILED
    assert "not a Pleo host" in result.error
    company.refresh_from_db()
    assert company.last_check_outcome == Outcome.FAILED


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    ["http://external.pleo.io", "ftp://x", "https://external.pleo.io@collector.evil.example"],
)
def test_stored_plain_http_or_odd_url_is_refused_before_any_secret_is_read(url):
    credential = make_credential()
    Credential.objects.filter(pk=credential.pk).update(api_base_url=url)
    credential.refresh_from_db()
    with pytest.raises(CredentialUnusable, match="refused"):
        pleo_client_for_credential(credential=credential, run_id=None)


@pytest.mark.django_db
def test_oauth_bearer_token_is_never_sent_to_a_stored_foreign_url(settings):
    settings.PLEO_OAUTH_BASE_URL = "https://auth.example.test"
    credential = make_oauth_credential(
        access_token="at_bearer_never_sent_7777", refresh_token="rt_bearer_7777", api_base_url=PLEO
    )
    company = make_company(credential=credential)
    Credential.objects.filter(pk=credential.pk).update(api_base_url=EVIL)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{EVIL}/v3/export-jobs", json=EMPTY_PAGE)
        result = company_check_run(company=company, trigger=Trigger.MANUAL)
        assert len(mock.calls) == 0
    assert result.outcome == Outcome.FAILED and "not a Pleo host" in result.error


@pytest.mark.django_db
def test_oauth_refresh_never_posts_the_client_secret_to_a_foreign_token_endpoint(settings):
    settings.PLEO_OAUTH_BASE_URL = EVIL
    credential = make_oauth_credential(
        client_secret="ocs_never_leaves_8888",
        access_token="at_expired_8888",
        refresh_token="rt_never_leaves_8888",
        expires_in=-5,
        api_base_url=PLEO,
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(f"{EVIL}/oauth/token", json={})
        with pytest.raises(CredentialUnusable, match="not a Pleo host"):
            oauth_service.oauth_access_token(credential_id=credential.pk)
        assert len(mock.calls) == 0
    credential.refresh_from_db()
    # Nothing was spent: the refresh token is intact, the marker released, the status unchanged.
    assert credential.refresh_token == "rt_never_leaves_8888"
    assert credential.refreshing_until is None
    assert credential.status == Credential.Status.OK


@pytest.mark.django_db
def test_connect_to_pleo_never_sends_the_browser_to_a_foreign_oauth_host(settings):
    settings.PLEO_OAUTH_BASE_URL = EVIL
    credential = make_oauth_credential()
    with pytest.raises(oauth_service.ConnectFailed, match="PLEO_OAUTH_BASE_URL is refused"):
        oauth_service.oauth_connect_begin(credential=credential)
    with pytest.raises(oauth_service.ConnectFailed, match="PLEO_OAUTH_BASE_URL is refused"):
        oauth_service.oauth_connect_complete(
            credential_id=credential.pk, code="c0de_hosts", code_verifier="v" * 43
        )


# --- The HTTP clients themselves (whatever built their config) ---------------------------------


class _Listener:
    """A bare TCP listener on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def listener():
    server = _Listener()
    yield server
    server.close()


def test_client_refuses_before_reading_a_credential_or_opening_a_connection(settings, listener):
    settings.PLEO_ALLOW_LOOPBACK = False  # as in production: the listener is not a Pleo host
    tokens_read = []

    def get_token():
        tokens_read.append(1)
        return "at_never_read_9999"

    config = pleo.ClientConfig(base_url=listener.url, max_attempts=1)
    with pleo.PleoClient(config=config, auth=pleo.BearerAuth(get_token)) as client:
        with pytest.raises(pleo.PleoHostNotAllowed, match="loopback") as refused:
            client.list_export_jobs()
    assert refused.value.method == "GET" and refused.value.path == "/v3/export-jobs"
    assert tokens_read == []
    assert listener.accepted == 0
    # The same client and URL with loopback allowed (DEBUG, the sandbox) does connect.
    settings.PLEO_ALLOW_LOOPBACK = True
    with pleo.PleoClient(config=config, auth=pleo.BearerAuth(get_token)) as client:
        with pytest.raises(pleo.PleoError):
            client.list_export_jobs()
    assert tokens_read and listener.accepted >= 1


def test_client_built_for_a_foreign_host_sends_nothing():
    key = secrets_registry.register("pk_test_direct_client_1212")
    config = pleo.ClientConfig(base_url=EVIL)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{EVIL}/v3/export-jobs", json=EMPTY_PAGE)
        with pleo.PleoClient(config=config, auth=pleo.ApiKeyAuth(key)) as client:
            with pytest.raises(pleo.PleoHostNotAllowed, match="not a Pleo host"):
                client.list_export_jobs()
            with pytest.raises(pleo.PleoHostNotAllowed):
                client.post_export_job_event("8f6e1c2a-0000-4000-8000-0000000000a1", "started")
        assert len(mock.calls) == 0


def test_oauth_token_request_refuses_before_opening_a_connection(settings, listener):
    config = pleo_oauth.OAuthConfig(
        base_url=listener.url, client_id="cid", client_secret="ocs_unit_listener_3434"
    )
    settings.PLEO_ALLOW_LOOPBACK = False
    with pytest.raises(pleo_oauth.OAuthHostNotAllowed, match="loopback"):
        pleo_oauth.refresh_tokens(config, refresh_token="rt_unit_listener_3434")
    assert listener.accepted == 0
    with pytest.raises(hosts.HostNotAllowed):
        pleo_oauth.OAuthConfig(base_url=EVIL, client_id="cid", client_secret="x")
    with pytest.raises(hosts.HostNotAllowed):
        pleo_oauth.authorize_url(
            base_url=EVIL, client_id="c", redirect_uri="r", scopes="s", state="s", challenge="c"
        )


# --- Redirects ----------------------------------------------------------------------------------


@pytest.fixture
def other_host():
    """A second loopback server reached by another host name (``localhost``)."""
    server = RawServer(answer(200, EMPTY_PAGE))
    server.other_url = server.url.replace("127.0.0.1", "localhost")
    yield server
    server.close()


def test_requests_itself_drops_authorization_on_a_redirect_to_another_host(other_host):
    """What requests does when it follows (we never let it): checked, not assumed."""
    secret = secrets_registry.register("pk_test_redirect_probe_5656")
    with RawServer(answer(302, None, {"Location": f"{other_host.other_url}/v3/x"})) as first:
        response = requests.get(
            f"{first.url}/v3/x", headers={"Authorization": _basic(secret)}, timeout=5
        )
    assert response.status_code == 200
    assert len(other_host.requests) == 1
    assert b"authorization" not in other_host.requests[0].lower()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_client_never_follows_a_redirect(other_host, status):
    key = secrets_registry.register("pk_test_redirected_key_6767")
    location = {"Location": f"{other_host.other_url}/v3/export-jobs"}
    with RawServer(answer(status, None, location)) as first:
        config = pleo.ClientConfig(base_url=first.url, max_attempts=1)
        with pleo.PleoClient(config=config, auth=pleo.ApiKeyAuth(key)) as client:
            with pytest.raises(pleo.PleoError):
                client.list_export_jobs()
            with pytest.raises(pleo.PleoError):
                client.post_export_job_event("8f6e1c2a-0000-4000-8000-0000000000a1", "started")
    assert other_host.requests == []


@pytest.mark.parametrize("status", [302, 307, 308])
def test_oauth_token_request_never_follows_a_redirect(other_host, status):
    secret = secrets_registry.register("ocs_redirected_secret_7878")
    location = {"Location": f"{other_host.other_url}/oauth/token"}
    with RawServer(answer(status, None, location)) as first:
        config = pleo_oauth.OAuthConfig(base_url=first.url, client_id="cid", client_secret=secret)
        with pytest.raises(pleo_oauth.OAuthError):
            pleo_oauth.refresh_tokens(config, refresh_token="rt_redirected_7878")
    assert other_host.requests == []


# --- add_company ----------------------------------------------------------------------------


def add_company(api_key: str, api_base_url: str) -> None:
    call_command(
        "add_company",
        "--name",
        "Acme",
        "--pleo-company-id",
        "5d3c4b1a-0000-4000-8000-0000000000c0",
        "--api-key",
        api_key,
        "--api-base-url",
        api_base_url,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url, why",
    [
        (EVIL, "not a Pleo host"),
        ("http://external.pleo.io", "must use https"),
        ("https://external.pleo.io@collector.evil.example", "user name or password"),
    ],
)
def test_add_company_refuses_a_foreign_base_url(url, why):
    with pytest.raises(CommandError, match=why) as refused:
        add_company("pk_test_add_company_refused", url)
    assert refused.value.returncode == 2
    assert not Company.objects.exists() and not Credential.objects.exists()


@pytest.mark.django_db
def test_add_company_takes_the_sandbox_on_loopback_in_development():
    add_company("pk_test_add_company_loopback", "http://127.0.0.1:8765")
    assert Credential.objects.get().api_base_url == "http://127.0.0.1:8765"
