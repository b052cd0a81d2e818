"""A malformed ``CREDENTIALS_ENCRYPTION_KEYS`` stops the service at start; a key problem at run
time makes the webhook answer 503 with ``Retry-After`` (Pleo sends the delivery again), never 500.
"""

from __future__ import annotations

import logging
import sys

import pytest
from cryptography.fernet import Fernet

from exports import crypto
from exports.models import WebhookDelivery
from tests import processes
from tests.test_settings import _check

VALID_KEY = Fernet.generate_key().decode()
# A recognisable value: it must never be printed, whatever the refusal says.
NOT_A_KEY = "notakey-MUST-NOT-BE-PRINTED"


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("value", "expected", "debug"),
    [
        (NOT_A_KEY, "key number 1 of 1 is not a valid Fernet key", "0"),
        (", ,", "is set but holds no key", "0"),
        (f"{VALID_KEY}, {NOT_A_KEY}", "key number 2 of 2 is not a valid Fernet key", "0"),
        (", ,", "is set but holds no key", "1"),  # DEBUG allows no key, not a malformed one
    ],
    ids=["not-a-key", "only-commas", "second-key-bad", "debug-only-commas"],
)
def test_a_malformed_key_setting_refuses_to_start(value, expected, debug):
    result = _check({"DEBUG": debug, "SECRET_KEY": "s", "CREDENTIALS_ENCRYPTION_KEYS": value})
    assert result.returncode != 0, result.stdout
    assert f"CREDENTIALS_ENCRYPTION_KEYS{':' if 'number' in expected else ''}" in result.stderr
    assert expected in result.stderr
    assert "MUST-NOT-BE-PRINTED" not in result.stderr + result.stdout
    assert VALID_KEY not in result.stderr + result.stdout


@pytest.mark.subprocess
def test_valid_keys_with_spaces_and_a_trailing_comma_are_read():
    other = Fernet.generate_key().decode()
    code = "from pleo_integration import settings; print(settings.CREDENTIALS_ENCRYPTION_KEYS)"
    env = processes.settings_env(
        DEBUG="0", SECRET_KEY="s", CREDENTIALS_ENCRYPTION_KEYS=f" {VALID_KEY}, {other},"
    )
    result = processes.run([sys.executable, "-c", code], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr([VALID_KEY, other])


def test_an_invalid_key_is_a_missing_usable_key():
    """Every caller that handles "no key" (admin, OAuth, webhook) handles a malformed one."""
    assert issubclass(crypto.EncryptionKeysInvalid, crypto.EncryptionKeysMissing)


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param(["notakey"], id="malformed"),
        pytest.param([Fernet.generate_key().decode()], id="encrypting-key-removed"),
        pytest.param([], id="none"),
    ],
)
def test_the_webhook_answers_503_with_retry_after_whatever_the_key_problem(
    hook, settings, caplog, keys
):
    settings.CREDENTIALS_ENCRYPTION_KEYS = keys
    with caplog.at_level(logging.ERROR):
        response = hook.post()
    assert response.status_code == 503
    assert response["Retry-After"] == "60"
    assert response.json() == {"error": "temporarily_unavailable"}
    assert not WebhookDelivery.objects.exists()
    # One ERROR line of ours (our fault, for the operator) without a traceback or the key
    # (besides django.request's line for any 5xx).
    (record,) = [r for r in caplog.records if r.name == "exports.webhooks"]
    assert record.levelno == logging.ERROR
    assert "signing secrets cannot be read" in record.getMessage()
    assert record.exc_info is None
    assert "notakey" not in caplog.text
