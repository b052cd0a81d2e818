import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from exports import crypto
from exports.models import Credential, XeroConnection
from tests.factories import make_company, make_credential


def test_round_trip_and_empty_stays_empty():
    token = crypto.encrypt("s3cret-value")
    assert token != "s3cret-value"
    assert crypto.decrypt(token) == "s3cret-value"
    assert crypto.encrypt("") == ""
    assert crypto.decrypt("") == ""


def test_no_keys_raises_naming_the_variable(settings):
    settings.CREDENTIALS_ENCRYPTION_KEYS = []
    with pytest.raises(crypto.EncryptionKeysMissing, match="CREDENTIALS_ENCRYPTION_KEYS"):
        crypto.encrypt("x")
    with pytest.raises(crypto.EncryptionKeysMissing, match="CREDENTIALS_ENCRYPTION_KEYS"):
        crypto.decrypt("gAAAA")


def test_wrong_key_raises_and_never_returns_ciphertext(settings):
    token = crypto.encrypt("s3cret-value")
    settings.CREDENTIALS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.SecretDecryptionError, match="cannot be decrypted"):
        crypto.decrypt(token)


def test_invalid_key_is_a_clear_configuration_error(settings):
    settings.CREDENTIALS_ENCRYPTION_KEYS = ["not-a-key"]
    with pytest.raises(ImproperlyConfigured, match="key number 1 is not a valid Fernet key"):
        crypto.encrypt("x")


def test_secret_hint_shows_at_most_last_four():
    assert crypto.secret_hint("pk_live_abcdefgh1234") == "••••1234"
    assert crypto.secret_hint("short") == "••••"
    assert crypto.secret_hint("") == ""


@pytest.mark.django_db
def test_raw_database_holds_no_plaintext_secret():
    credential = make_credential(api_key="pk_test_plaintext_must_not_be_stored_123")
    credential.oauth_client_secret = "client-secret-plaintext-456"
    credential.save()
    endpoint = credential.webhook_endpoint
    endpoint.set_secret_entries([{"secret": "whsec_plaintextsecret789"}])
    endpoint.save()
    with connection.cursor() as cursor:
        dump = []
        for table in ("exports_credential", "exports_webhookendpoint"):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608
            dump.extend(str(row) for row in cursor.fetchall())
    text = "\n".join(dump)
    for plaintext in (
        "pk_test_plaintext_must_not_be_stored_123",
        "client-secret-plaintext-456",
        "whsec_plaintextsecret789",
    ):
        assert plaintext not in text
    assert (
        Credential.objects.get(pk=credential.pk).api_key
        == "pk_test_plaintext_must_not_be_stored_123"
    )


@pytest.mark.django_db
def test_rotation_command_reencrypts_every_row_under_the_first_key(settings):
    old_key = settings.CREDENTIALS_ENCRYPTION_KEYS[0]
    company = make_company()
    credential = company.credential
    credential.oauth_client_secret = "client-secret-1"
    credential.save()
    endpoint = credential.webhook_endpoint
    endpoint.set_secret_entries([{"secret": "whsec_abc"}])
    endpoint.save()
    api_key = credential.api_key
    xero = XeroConnection.objects.create(company=company)
    xero.access_token, xero.refresh_token = "xat-rotate-1", "xrt-rotate-1"
    xero.save()

    new_key = Fernet.generate_key().decode()
    settings.CREDENTIALS_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_encryption_keys")

    settings.CREDENTIALS_ENCRYPTION_KEYS = [new_key]  # the old key is gone: rows still readable
    credential.refresh_from_db()
    endpoint.refresh_from_db()
    assert credential.api_key == api_key
    assert credential.oauth_client_secret == "client-secret-1"
    assert endpoint.secret_entries() == [{"secret": "whsec_abc"}]
    xero.refresh_from_db()
    assert (xero.access_token, xero.refresh_token) == ("xat-rotate-1", "xrt-rotate-1")
