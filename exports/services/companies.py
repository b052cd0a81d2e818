"""Companies, their credentials and webhook endpoints: creation and the URLs we give to Pleo."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from exports import validators
from exports.models import Company, Credential, WebhookEndpoint


def webhook_endpoint_url(*, endpoint: WebhookEndpoint) -> str:
    """The full URL Pleo delivers to, built from ``PUBLIC_BASE_URL``."""
    return f"{settings.PUBLIC_BASE_URL}{endpoint.path}"


def webhook_endpoint_ensure(*, credential: Credential) -> WebhookEndpoint:
    endpoint, _ = WebhookEndpoint.objects.get_or_create(credential=credential)
    return endpoint


def webhook_endpoint_add_secret(
    *, endpoint: WebhookEndpoint, secret: str, subscription_id: str = ""
) -> None:
    """Add ``secret`` as the newest signing secret (kept beside the others: rotation)."""
    from exports import clock

    entries = [e for e in endpoint.secret_entries() if e["secret"] != secret]
    entries.append(
        {
            "secret": secret,
            "added_at": clock.now().isoformat(),
            "retire_after": None,
            "subscription_id": subscription_id,
        }
    )
    endpoint.set_secret_entries(entries)
    endpoint.save(update_fields=["signing_secrets_ciphertext", "updated_at"])


@dataclass(frozen=True)
class CompanySaved:
    company: Company
    endpoint: WebhookEndpoint
    created: bool


def company_input_problems(
    *, name: str, api_key: str, api_base_url: str = "", webhook_secret: str = ""
) -> dict[str, list[str]]:
    """What is wrong with the input of :func:`company_add_or_update`, by argument name (empty
    when nothing is): the first rule each argument breaks. Lengths come from the columns, URLs
    from the Pleo host allow-list, the webhook secret's form from the signing module."""
    problems: dict[str, list[str]] = {}

    def check(argument: str, rule, value: str, **kwargs) -> None:
        if argument in problems:
            return
        try:
            rule(value, **kwargs)
        except ValidationError as exc:
            problems[argument] = validators.messages_of(exc)

    check("name", validators.validate_not_empty, name, label="The name")
    for model in (Company, Credential):  # the credential is named after the company
        check(
            "name",
            validators.validate_max_length,
            name,
            model=model,
            field_name="name",
            label="The name",
        )
    check("api_key", validators.validate_not_empty, api_key, label="The API key")
    check("api_key", validators.validate_secret_text, api_key, label="The API key")
    for rule, kwargs in (
        (validators.validate_max_length, {"model": Credential, "field_name": "api_base_url"}),
        (validators.validate_pleo_base_url, {}),
    ):
        check("api_base_url", rule, api_base_url, label="The API base URL", **kwargs)
    check("webhook_secret", validators.validate_webhook_secret, webhook_secret)
    return problems


@transaction.atomic
def company_add_or_update(
    *,
    name: str,
    pleo_company_id: uuid.UUID,
    api_key: str,
    api_base_url: str = "",
    webhook_secret: str = "",
) -> CompanySaved:
    """Create or update (by Pleo company id) an active company with its own API-key credential.

    An inactive company is reactivated. The credential's status is reset to OK, since its key was
    just given to us anew. Input outside :func:`company_input_problems` raises ``ValidationError``
    (by argument name) before anything is written.
    """
    problems = company_input_problems(
        name=name, api_key=api_key, api_base_url=api_base_url, webhook_secret=webhook_secret
    )
    if problems:
        raise ValidationError(problems)
    company = (
        Company.objects.select_related("credential")
        .select_for_update()
        .filter(pleo_company_id=pleo_company_id)
        .first()
    )
    created = company is None
    if created:
        credential = Credential(name=name, kind=Credential.Kind.API_KEY)
    else:
        credential = company.credential
        credential.kind = Credential.Kind.API_KEY
    credential.api_key = api_key
    credential.api_base_url = api_base_url
    credential.status = Credential.Status.OK
    credential.last_error = ""
    credential.save()
    if created:
        company = Company(pleo_company_id=pleo_company_id, credential=credential)
    company.name = name
    company.active = True
    company.save()
    endpoint = webhook_endpoint_ensure(credential=credential)
    if webhook_secret:
        webhook_endpoint_add_secret(endpoint=endpoint, secret=webhook_secret)
    return CompanySaved(company=company, endpoint=endpoint, created=created)
