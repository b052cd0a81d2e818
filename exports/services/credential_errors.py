"""Why a credential may not be used for calls, in words: :class:`CredentialUnusable` and its
message.

A leaf: :mod:`exports.services.credentials` (which builds clients, and imports
:mod:`exports.services.oauth` for a bearer token) and :mod:`exports.services.oauth` (which raises
it when a token cannot be had) both import it from here, so neither imports the other back.
Callers catch it as ``exports.services.credentials.CredentialUnusable``.
"""

from __future__ import annotations

from exports.models import Credential


class CredentialUnusable(Exception):
    """The credential may not be used for calls (invalid, or needs re-authorisation)."""


def credential_unusable_message(*, name: str, status: str, last_error: str) -> str:
    if status == Credential.Status.NEEDS_REAUTHORISATION:
        text = f"Credential '{name}' needs re-authorisation"
        text += f": {last_error.rstrip('.')}." if last_error else "."
        if "reconnect" not in last_error.lower():
            text += " Use 'Reconnect to Pleo' on the credential's admin page."
        return text
    label = Credential.Status(status).label.lower() if status in Credential.Status else status
    return (
        f"Credential '{name}' is {label}"
        + (f": {last_error}" if last_error else "")
        + ". Edit it in the admin to use it again."
    )
