"""Connect an OAuth credential to Pleo from the admin: the start and the callback.

``connect`` (an admin view, ``admin/exports/credential/<id>/oauth/connect/``, POST only: the
"Connect to Pleo" button's form, CSRF-protected by the admin; a GET is 405, so a link or an image
elsewhere cannot start attempts and push out the operator's pending ones) remembers a fresh PKCE
verifier and ``state`` in the admin user's session and sends the browser to Pleo's consent
page. ``callback`` (``/oauth/pleo/callback/``, staff only) takes the answer: the ``state`` must be
one this session started (it is single-use), then the code is exchanged and the tokens stored.
Denied consent, a wrong or missing ``state`` and a failed exchange each end with a message on the
credential page and change nothing. No token, code, verifier or secret is logged or shown. The
steps Xero's connections share are :class:`exports.consent_views.ConsentViews`.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import get_object_or_404
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_POST

from exports.consent_views import ConsentViews
from exports.models import Credential
from exports.selectors.company_access import credential_list_for_user
from exports.services import oauth as oauth_service

SESSION_KEY = "pleo_oauth_connect"
VIEWS = ConsentViews(
    consent=oauth_service.CONSENT,
    session_key=SESSION_KEY,
    permission="exports.change_credential",
    denied="You may not connect credentials to Pleo.",
    model="exports_credential",
    id_key="credential_id",
    subject="the credential",
    visible=lambda user: credential_list_for_user(user=user),
)


@never_cache
@require_POST
@sensitive_variables()
def connect(request, credential_id: int):
    """Start connecting (POST only; wrapped by ``admin_site.admin_view``, which checks the CSRF
    token)."""
    credential = get_object_or_404(credential_list_for_user(user=request.user), pk=credential_id)
    return VIEWS.start(
        request, credential.pk, lambda: oauth_service.oauth_connect_begin(credential=credential)
    )


@sensitive_variables()
def _complete(attempt: dict, code: str) -> Credential:
    return oauth_service.oauth_connect_complete(
        credential_id=attempt["credential_id"],
        code=code,
        code_verifier=attempt["verifier"],
        client_id=attempt.get("client_id"),
    )


def _report(request, credential: Credential) -> None:
    expires = credential.access_token_expires_at
    messages.success(
        request,
        f"Connected '{credential.name}' to Pleo"
        + (
            f"; the access token expires {expires:%Y-%m-%d %H:%M} UTC and is refreshed "
            f"automatically."
            if expires
            else "."
        ),
    )


@never_cache
@staff_member_required
@sensitive_variables()
def callback(request):
    """Pleo sends the browser back here with ``code`` + ``state`` or ``error`` + ``state``."""
    return VIEWS.finish(request, _complete, _report)
