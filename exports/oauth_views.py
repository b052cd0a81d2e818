"""Connect an OAuth credential to Pleo from the admin: the start and the callback.

``connect`` (an admin view, ``admin/exports/credential/<id>/oauth/connect/``, POST only: the
"Connect to Pleo" button's form, CSRF-protected by the admin; a GET is 405, so a link or an image
elsewhere cannot start attempts and push out the operator's pending ones) remembers a fresh PKCE
verifier and ``state`` in the admin user's session and sends the browser to Pleo's consent
page. ``callback`` (``/oauth/pleo/callback/``, staff only) takes the answer: the ``state`` must be
one this session started (it is single-use), then the code is exchanged and the tokens stored.
Denied consent, a wrong or missing ``state`` and a failed exchange each end with a message on the
credential page and change nothing. No token, code, verifier or secret is logged or shown.
"""

from __future__ import annotations

import time

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_POST

from exports.selectors.company_access import credential_list_for_user
from exports.services import oauth as oauth_service

SESSION_KEY = "pleo_oauth_connect"
ATTEMPT_TTL_SECONDS = 15 * 60
MAX_ATTEMPTS = 5
PERMISSION = "exports.change_credential"


def _attempts(session, key: str = SESSION_KEY) -> dict[str, dict]:
    """Pending connect attempts of this session by ``state``, without expired ones (``key``:
    the session key of one OAuth server's attempts; Xero's are ``exports.xero_views``')."""
    now = time.time()
    attempts = session.get(key) or {}
    return {
        state: attempt
        for state, attempt in attempts.items()
        if isinstance(attempt, dict) and now - attempt.get("created", 0) < ATTEMPT_TTL_SECONDS
    }


def _change_page(credential_id) -> str:
    return reverse("admin:exports_credential_change", args=[credential_id])


@never_cache
@require_POST
@sensitive_variables()
def connect(request, credential_id: int):
    """Start connecting (POST only; wrapped by ``admin_site.admin_view``, which checks the CSRF
    token)."""
    credential = get_object_or_404(credential_list_for_user(user=request.user), pk=credential_id)
    if not request.user.has_perm(PERMISSION):
        messages.error(request, "You may not connect credentials to Pleo.")
        return redirect(_change_page(credential.pk))
    try:
        start = oauth_service.oauth_connect_begin(credential=credential)
    except oauth_service.ConnectFailed as exc:
        messages.error(request, f"Cannot connect to Pleo: {exc}")
        return redirect(_change_page(credential.pk))
    remember_attempt(
        request.session,
        SESSION_KEY,
        start.state,
        {
            "verifier": start.verifier,
            "credential_id": start.credential_id,
            "client_id": start.client_id,
        },
    )
    return HttpResponseRedirect(start.url)


def remember_attempt(session, key: str, state: str, attempt: dict) -> None:
    """Keep ``attempt`` under ``state`` (the newest ``MAX_ATTEMPTS`` of ``key`` are kept)."""
    attempts = _attempts(session, key)
    attempts[state] = {**attempt, "created": time.time()}
    newest = sorted(attempts.items(), key=lambda item: item[1]["created"])[-MAX_ATTEMPTS:]
    session[key] = dict(newest)


def foreign_answer(request, service: str, button: str, back: str):
    """The answer names no attempt of this session: say so, change nothing, go ``back``."""
    messages.error(
        request,
        f"Connecting to {service} failed: the answer does not belong to a connection started in "
        f"this browser session (the state is missing, wrong or expired). Nothing was "
        f"changed; use '{button}' again.",
    )
    return redirect(back)


def answer_problem(request, service: str, subject: str) -> str | None:
    """Why the OAuth server's answer carries no code to exchange (denied, an error, no code),
    as the admin's message; None when it has one."""
    error = request.GET.get("error")
    if error:
        description = (request.GET.get("error_description") or "").strip()[:300]
        if error == "access_denied":
            text = f"Consent was denied at {service}, so {subject} was not connected."
        else:
            text = f"{service} did not authorise the connection ({error[:100]}"
            text += f": {description})." if description else ")."
        return text + " Nothing was changed."
    if not request.GET.get("code"):
        return f"{service}'s answer has no authorization code. Nothing was changed."
    return None


def take_attempt(session, key: str, state: str) -> dict | None:
    """The attempt of ``state`` (single-use: removed), or None."""
    attempts = _attempts(session, key)
    attempt = attempts.pop(state, None) if state else None
    session[key] = attempts
    return attempt


@never_cache
@staff_member_required
@sensitive_variables()
def callback(request):
    """Pleo sends the browser back here with ``code`` + ``state`` or ``error`` + ``state``."""
    attempt = take_attempt(request.session, SESSION_KEY, request.GET.get("state") or "")
    if attempt is None:
        return foreign_answer(
            request, "Pleo", "Connect to Pleo", "admin:exports_credential_changelist"
        )
    change_page = _change_page(attempt["credential_id"])
    visible = credential_list_for_user(user=request.user).filter(pk=attempt["credential_id"])
    if not request.user.has_perm(PERMISSION) or not visible.exists():
        messages.error(request, "You may not connect credentials to Pleo.")
        return redirect(change_page)
    problem = answer_problem(request, "Pleo", "the credential")
    if problem:
        messages.error(request, problem)
        return redirect(change_page)
    code = request.GET["code"]
    try:
        credential = oauth_service.oauth_connect_complete(
            credential_id=attempt["credential_id"],
            code=code,
            code_verifier=attempt["verifier"],
            client_id=attempt.get("client_id"),
        )
    except oauth_service.ConnectFailed as exc:
        messages.error(request, f"Connecting to Pleo failed: {exc}")
        return redirect(change_page)
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
    return redirect(change_page)
