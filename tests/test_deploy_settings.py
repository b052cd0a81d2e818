"""HTTPS settings from the environment: `check --deploy` is clean with the documented production
settings, and the local demo over plain http (DEBUG=1) gets none of them."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from tests.processes import MANAGE, ROOT

pytestmark = pytest.mark.subprocess

# README "Production notes" / .env.example: what a production deployment sets.
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "CREDENTIALS_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "ALLOWED_HOSTS": "bridge.example.com",
    "PUBLIC_BASE_URL": "https://bridge.example.com",
}
HTTPS_SETTINGS = (
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_REDIRECT_EXEMPT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "CSRF_TRUSTED_ORIGINS",
)


def _env(overrides: dict) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")
    }
    return {
        **env,
        "DJANGO_SETTINGS_MODULE": "pleo_integration.settings",
        "DOTENV_FILE": "/nonexistent/.env",  # a developer's local .env must not count here
        **overrides,
    }


def _run(argv: list[str], overrides: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, env=_env(overrides), cwd=ROOT, capture_output=True, text=True, timeout=60
    )


# Reads the settings module once per environment, in one process (a process per environment
# would cost a Django start-up each).
SETTINGS_SCRIPT = """
import importlib, json, os, sys
base = dict(os.environ)
found = []
for overrides in json.loads(sys.argv[1]):
    os.environ.clear()
    os.environ.update({**base, **overrides})
    module = importlib.reload(importlib.import_module("pleo_integration.settings"))
    found.append({name: getattr(module, name) for name in json.loads(sys.argv[2])})
print(json.dumps(found))
"""


def https_settings(*environments: dict) -> list[dict]:
    result = _run(
        [
            sys.executable,
            "-c",
            SETTINGS_SCRIPT,
            json.dumps(list(environments)),
            json.dumps(HTTPS_SETTINGS),
        ],
        {},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_check_deploy_with_the_documented_production_settings_is_clean():
    result = _run(
        [sys.executable, MANAGE, "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert not re.search(r"\(\w+\.[WE]\d+\)", output), output
    assert "System check identified no issues" in output


def test_https_settings_follow_the_public_url_and_each_can_be_set():
    production, demo, plain, overridden, no_proxy_header = https_settings(
        PRODUCTION,
        # bin/serve writes DEBUG=1 and serves http://127.0.0.1:8000.
        {"DEBUG": "1"},
        # DEBUG off at an http URL (a trial run without TLS).
        {**PRODUCTION, "PUBLIC_BASE_URL": "http://127.0.0.1:8000"},
        {
            **PRODUCTION,
            "SECURE_SSL_REDIRECT": "0",
            "SECURE_HSTS_SECONDS": "3600",
            "SECURE_HSTS_INCLUDE_SUBDOMAINS": "0",
            "SECURE_HSTS_PRELOAD": "1",
            "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Ssl:on",
            "SECURE_REDIRECT_EXEMPT": r"^healthz$,^status/",
            "CSRF_TRUSTED_ORIGINS": "https://bridge.example.com,https://admin.example.com",
        },
        {**PRODUCTION, "SECURE_PROXY_SSL_HEADER": ""},
    )
    # Production: what check --deploy asks for.
    assert production == {
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": False,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_REDIRECT_EXEMPT": ["^healthz$"],
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "CSRF_TRUSTED_ORIGINS": ["https://bridge.example.com"],
    }
    # The local demo over http: no redirect, no HSTS, cookies that work over http, and no
    # forwarded header trusted.
    assert demo["SECURE_SSL_REDIRECT"] is False
    assert demo["SECURE_HSTS_SECONDS"] == 0
    assert demo["SESSION_COOKIE_SECURE"] is False and demo["CSRF_COOKIE_SECURE"] is False
    assert demo["SECURE_PROXY_SSL_HEADER"] is None
    assert demo["CSRF_TRUSTED_ORIGINS"] == ["http://127.0.0.1:8000"]
    assert plain["SECURE_SSL_REDIRECT"] is False and plain["SECURE_HSTS_SECONDS"] == 0
    assert plain["SESSION_COOKIE_SECURE"] is False
    # Each one from the environment.
    assert overridden["SECURE_SSL_REDIRECT"] is False
    assert overridden["SECURE_HSTS_SECONDS"] == 3600
    assert overridden["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
    assert overridden["SECURE_HSTS_PRELOAD"] is True
    assert overridden["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_SSL", "on"]
    assert overridden["SECURE_REDIRECT_EXEMPT"] == ["^healthz$", "^status/"]
    assert overridden["CSRF_TRUSTED_ORIGINS"] == [
        "https://bridge.example.com",
        "https://admin.example.com",
    ]
    assert no_proxy_header["SECURE_PROXY_SSL_HEADER"] is None


@pytest.mark.django_db
def test_redirect_hsts_and_the_health_check_exemption(client, settings):
    """The behaviour the settings buy (SecurityMiddleware), as the proxy and the balancer see it."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    settings.ALLOWED_HOSTS = ["bridge.example.com"]
    host = {"HTTP_HOST": "bridge.example.com"}
    plain = client.get("/admin/login/", **host)
    assert plain.status_code == 301
    assert plain["Location"] == "https://bridge.example.com/admin/login/"
    proxied = client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https", **host)
    assert proxied.status_code == 200
    assert proxied["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    health = client.get("/healthz", **host)
    assert health.status_code in (200, 503)  # answered over http, not redirected
