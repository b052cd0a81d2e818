"""The admin's half of an OAuth 2.0 consent, shared by Pleo credentials (:mod:`exports.oauth_views`)
and Xero connections (:mod:`exports.xero_views`): the start and the callback.

The start (a POST from the object's admin page, CSRF-checked by the admin) checks the permission,
asks the connect service for the consent page (:mod:`exports.services.oauth_consent`), keeps the
PKCE verifier and what the callback needs in the admin user's session under the attempt's
``state`` (the newest :data:`MAX_ATTEMPTS` per OAuth server, each for :data:`ATTEMPT_TTL_SECONDS`)
and sends the browser there. The callback takes the answer: the ``state`` must be one this session
started (single-use), the user must still see the object and hold the permission, the answer must
carry a code; then the service exchanges it. Each refusal ends with a message on the object's page
and changes nothing. No token, code, verifier or secret is logged or shown.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.debug import sensitive_variables

from exports.services.oauth_consent import Consent, ConsentStart

ATTEMPT_TTL_SECONDS = 15 * 60
MAX_ATTEMPTS = 5


def attempts_pending(session, key: str) -> dict[str, dict]:
    """Pending connect attempts of this session by ``state``, without expired ones (``key``:
    the session key of one OAuth server's attempts)."""
    now = time.time()
    attempts = session.get(key) or {}
    return {
        state: attempt
        for state, attempt in attempts.items()
        if isinstance(attempt, dict) and now - attempt.get("created", 0) < ATTEMPT_TTL_SECONDS
    }


def remember_attempt(session, key: str, state: str, attempt: dict) -> None:
    """Keep ``attempt`` under ``state`` (the newest ``MAX_ATTEMPTS`` of ``key`` are kept)."""
    attempts = attempts_pending(session, key)
    attempts[state] = {**attempt, "created": time.time()}
    newest = sorted(attempts.items(), key=lambda item: item[1]["created"])[-MAX_ATTEMPTS:]
    session[key] = dict(newest)


def take_attempt(session, key: str, state: str) -> dict | None:
    """The attempt of ``state`` (single-use: removed), or None."""
    attempts = attempts_pending(session, key)
    attempt = attempts.pop(state, None) if state else None
    session[key] = attempts
    return attempt


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


@dataclass(frozen=True)
class ConsentViews:
    """One OAuth server's consent in the admin. The object connected (a credential, a company)
    is named by ``id_key`` in the attempt; ``visible(user)`` is what the user may see of them,
    ``model`` its admin URL name (``exports_credential``), ``subject`` it in messages."""

    consent: Consent
    session_key: str
    permission: str
    denied: str
    model: str
    id_key: str
    subject: str
    visible: Callable[[Any], QuerySet]

    def page(self, pk) -> str:
        return reverse(f"admin:{self.model}_change", args=[pk])

    def start(self, request, pk, begin: Callable[[], ConsentStart]) -> HttpResponse:
        """Start connecting object ``pk`` (one the user sees): ``begin()`` is the service's."""
        if not request.user.has_perm(self.permission):
            messages.error(request, self.denied)
            return redirect(self.page(pk))
        try:
            start = begin()
        except self.consent.failed as exc:
            messages.error(request, f"Cannot connect to {self.consent.service}: {exc}")
            return redirect(self.page(pk))
        attempt = {"verifier": start.verifier, **start.remember}
        remember_attempt(request.session, self.session_key, start.state, attempt)
        return HttpResponseRedirect(start.url)

    @sensitive_variables()
    def finish(
        self,
        request,
        complete: Callable[[dict, str], Any],
        report: Callable[[Any, Any], None],
    ) -> HttpResponse:
        """The callback: ``complete(attempt, code)`` is the service's exchange (raising the
        consent's ``failed``), ``report(request, result)`` adds the message of a success."""
        attempt = take_attempt(request.session, self.session_key, request.GET.get("state") or "")
        if attempt is None:
            messages.error(
                request,
                f"Connecting to {self.consent.service} failed: the answer does not belong to a "
                f"connection started in this browser session (the state is missing, wrong or "
                f"expired). Nothing was changed; use '{self.consent.button}' again.",
            )
            return redirect(f"admin:{self.model}_changelist")
        page = self.page(attempt[self.id_key])
        visible = self.visible(request.user).filter(pk=attempt[self.id_key])
        if not request.user.has_perm(self.permission) or not visible.exists():
            messages.error(request, self.denied)
            return redirect(page)
        problem = answer_problem(request, self.consent.service, self.subject)
        if problem:
            messages.error(request, problem)
            return redirect(page)
        try:
            result = complete(attempt, request.GET["code"])
        except self.consent.failed as exc:
            messages.error(request, f"Connecting to {self.consent.service} failed: {exc}")
            return redirect(page)
        report(request, result)
        return redirect(page)


__all__ = [
    "ATTEMPT_TTL_SECONDS",
    "MAX_ATTEMPTS",
    "ConsentViews",
    "answer_problem",
    "attempts_pending",
    "remember_attempt",
    "take_attempt",
]
