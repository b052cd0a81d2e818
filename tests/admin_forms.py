"""POST data for the admin's forms, as a browser sends them."""

from __future__ import annotations


def credential_form(credential=None, **fields) -> dict:
    """The credential form: ``credential``'s values (a blank add form without one), secrets left
    blank (a blank secret keeps the stored one), and its webhook endpoint's inline unchanged.
    ``fields`` set or override any field."""
    data = {
        "name": "New credential",
        "kind": "api_key",
        "api_key": "",
        "oauth_client_id": "",
        "oauth_client_secret": "",
        "api_base_url": "",
        "oauth_base_url": "",
        "webhook_endpoint-TOTAL_FORMS": "0",
        "webhook_endpoint-INITIAL_FORMS": "0",
        "webhook_endpoint-MIN_NUM_FORMS": "0",
        "webhook_endpoint-MAX_NUM_FORMS": "1",
    }
    if credential is not None:
        data.update(
            {
                "name": credential.name,
                "kind": credential.kind,
                "oauth_client_id": credential.oauth_client_id,
                "api_base_url": credential.api_base_url,
                "oauth_base_url": credential.oauth_base_url,
            }
        )
    if hasattr(credential, "webhook_endpoint"):  # False for none (a credential made without one)
        data.update(
            {
                "webhook_endpoint-TOTAL_FORMS": "1",
                "webhook_endpoint-INITIAL_FORMS": "1",
                "webhook_endpoint-0-id": str(credential.webhook_endpoint.pk),
                "webhook_endpoint-0-credential": str(credential.pk),
            }
        )
    data.update(fields)
    return data
