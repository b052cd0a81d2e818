"""``add_company``: input is checked before anything is written.

A 300-character name or an over-long base URL was a ``DataError`` traceback on PostgreSQL (and
silently stored on SQLite); a webhook secret that is not ``whsec_`` + base64 was stored and then
every delivery answered 401 ``no_secret``. Each is now a clear line naming the option, exit 2,
and nothing written. Run on SQLite and on PostgreSQL (``DATABASE_URL=postgres://…``).
"""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from exports.models import Company, Credential, WebhookEndpoint
from exports.services.companies import company_add_or_update

pytestmark = pytest.mark.django_db

GOOD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _add(*extra, name="Acme", api_key="pk_test_add_company_input"):
    args = ["--name", name, "--pleo-company-id", str(uuid.uuid4()), "--api-key", api_key]
    call_command("add_company", *args, *extra)


def _refused(*extra, **kwargs) -> str:
    with pytest.raises(CommandError) as refused:
        _add(*extra, **kwargs)
    assert refused.value.returncode == 2
    assert not Company.objects.exists()
    assert not Credential.objects.exists()
    assert not WebhookEndpoint.objects.exists()
    return str(refused.value)


def test_a_300_character_name_is_refused():
    message = _refused(name="N" * 300)
    assert message == "--name: The name is 300 characters long; at most 200 are allowed."


def test_the_longest_name_the_column_takes_is_accepted():
    _add(name="N" * 200)
    assert Company.objects.get().name == "N" * 200


def test_a_base_url_over_the_columns_length_is_refused():
    url = "https://external.pleo.io/" + "v" * 200
    message = _refused("--api-base-url", url)
    assert message.startswith("--api-base-url: The API base URL is 225 characters long")
    assert "at most 200" in message


@pytest.mark.parametrize(
    "secret",
    [
        "not_a_whsec_secret",
        "whsec_",  # nothing after the prefix
        "whsec_abc",  # not base64 (padding)
        "whsec_!!!!!!!!",
        "whsec_MfKQ9r8GKYqrTwjU PD8ILPZIo2LaLaSw",  # a space inside
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\u00e9",
    ],
)
def test_a_webhook_secret_that_is_not_whsec_and_base64_is_refused(secret):
    message = _refused("--webhook-secret", secret)
    assert message.startswith("--webhook-secret: The webhook secret must")


def test_a_good_webhook_secret_is_stored():
    _add("--webhook-secret", GOOD_SECRET)
    endpoint = WebhookEndpoint.objects.get()
    assert [e["secret"] for e in endpoint.secret_entries()] == [GOOD_SECRET]


def test_an_api_key_with_a_line_break_inside_is_refused():
    message = _refused(api_key="pk_test_first_half\npk_test_second_half")
    assert message.startswith("--api-key: The API key must not contain spaces, line breaks")
    assert "pk_test_first_half" not in message  # the key itself is never repeated


def test_every_problem_is_named_at_once():
    message = _refused("--api-base-url", "ftp://x", "--webhook-secret", "whsec_abc", name="N" * 201)
    assert [line.split(":")[0] for line in message.splitlines()] == [
        "--name",
        "--api-base-url",
        "--webhook-secret",
    ]


def test_the_service_refuses_the_same_input_whoever_calls_it():
    with pytest.raises(ValidationError) as refused:
        company_add_or_update(
            name="N" * 300,
            pleo_company_id=uuid.uuid4(),
            api_key="pk_test_service_input",
            api_base_url="https://collector.evil.example",
            webhook_secret="whsec_abc",
        )
    assert set(refused.value.message_dict) == {"name", "api_base_url", "webhook_secret"}
    assert not Company.objects.exists() and not Credential.objects.exists()


# --- The same class of fault in the other command that writes operator input ------------------


@pytest.mark.parametrize("username", ["u" * 151, "has spaces", ""])
def test_ensure_admin_refuses_a_username_the_user_model_would_not_take(username):
    from django.contrib.auth.models import User

    with pytest.raises(CommandError) as refused:
        call_command("ensure_admin", "--username", username)
    assert refused.value.returncode == 2 and str(refused.value).startswith("--username: ")
    assert not User.objects.exists()
