"""Companies, their credentials and webhook endpoints: creation and the URLs we give to Pleo."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from exports.models import Company, Credential, WebhookEndpoint


def webhook_url(endpoint: WebhookEndpoint) -> str:
    """The full URL Pleo delivers to, built from ``PUBLIC_BASE_URL``."""
    return f"{settings.PUBLIC_BASE_URL}{endpoint.path}"


def ensure_webhook_endpoint(credential: Credential) -> WebhookEndpoint:
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
    just given to us anew.
    """
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
    endpoint = ensure_webhook_endpoint(credential)
    if webhook_secret:
        webhook_endpoint_add_secret(endpoint=endpoint, secret=webhook_secret)
    return CompanySaved(company=company, endpoint=endpoint, created=created)
