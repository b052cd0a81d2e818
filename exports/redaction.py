"""Secrets out of a text: the one redactor the product's last guards share.

A text that may quote a secret (a message about to be stored or sent, an error report, the reason
an identity provider gave for refusing a token) goes through :func:`without_secrets` with the
secrets known at that point. Each secret is replaced wherever it appears as sent, URL-encoded
(``quote``, ``quote_plus``) and, for HTML, escaped; the longest form first, so a secret that
contains another is hidden whole. Values shorter than :data:`MIN_SCRUBBED_LENGTH` are not
searched for: they would match too much, and no secret of ours is that short.

Used by the notifications (:func:`exports.notifications.service.scrub`), the error reports
(:class:`exports.error_reports.SecretQueryExceptionReporter`) and the OAuth refresh loop's
re-authorisation reasons (:mod:`exports.services.token_refresh`). Imports only the standard
library and Django's HTML escaping.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from django.utils.html import escape

# What a hidden secret reads as in a message, a log line, an audit entry or a stored reason.
HIDDEN = "[hidden]"
# Shorter values are not searched for (they would match too much).
MIN_SCRUBBED_LENGTH = 8


def secret_forms(secrets: Iterable[str], *, html: bool = False) -> list[str]:
    """Every form of each long-enough secret a text may hold, longest first."""
    forms: set[str] = set()
    for secret in secrets:
        if secret and len(secret) >= MIN_SCRUBBED_LENGTH:
            forms |= {secret, quote(secret, safe=""), quote_plus(secret)}
    if html:
        forms |= {str(escape(form)) for form in forms}
    return sorted(forms, key=len, reverse=True)


def without_secrets(
    text: str, secrets: Iterable[str], *, substitute: str = HIDDEN, html: bool = False
) -> str:
    """``text`` with every form of each secret (:func:`secret_forms`) replaced by
    ``substitute``."""
    for form in secret_forms(secrets, html=html):
        text = text.replace(form, substitute)
    return text


__all__ = ["HIDDEN", "MIN_SCRUBBED_LENGTH", "secret_forms", "without_secrets"]
