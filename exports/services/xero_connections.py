"""A company's Xero connection: connecting from the admin, the tenant, tokens, and its client.

Connect (``xero_connection_begin`` → Xero's consent page → ``xero_connection_complete``): a fresh
PKCE verifier and ``state`` per attempt (kept in the admin user's session by
:mod:`exports.xero_views`), the code exchanged once at ``XERO_IDENTITY_BASE_URL`` (both steps
shared with Pleo: :mod:`exports.services.oauth_consent`), both tokens
stored encrypted with the access token's expiry and the scopes Xero granted, then
``GET /connections``: one organisation is taken at once; several are offered on the company page
(``xero_connection_choose_tenant``); none leaves the connection needing re-authorisation.

Tokens are refreshed by :mod:`exports.services.token_refresh` (one refresh in flight per
connection across processes, as for Pleo credentials). A refused refresh token, a 401 after a
fresh token, or a 403 (the organisation disconnected at Xero, or a scope missing), puts the
connection in "needs re-authorisation" with the reason; the company's people are notified
(``xero_reauthorisation``, once per transition, throttled per company like every notification),
the company page shows it and the Xero adapter's ``validate`` fails the company's jobs with
``accounting_system_authentication_failure`` until someone reconnects. Reconnecting (a new
consent: ``xero_connection_complete``) sets it back to OK and clears the reason.

Nothing here logs or puts in a message a token, code, verifier or the client secret.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from exports import audit, clock
from exports.models import AuditEntry, AuditStep, Company, Trigger, XeroConnection
from exports.notifications import service as notifications
from exports.pleo import BudgetExhausted, PleoAuthError
from exports.pleo import oauth as pleo_oauth
from exports.services import budget, token_refresh
from exports.services.oauth_consent import Consent, ConsentStart
from exports.xero import oauth as xero_oauth
from exports.xero.client import XeroClient, config_from_settings
from exports.xero.errors import XeroError

logger = logging.getLogger(__name__)

AUDIT_STEP = AuditStep.XERO_CONNECTION
HTTP_AUDIT_STEP = AuditStep.XERO_CALL


class XeroConnectFailed(Exception):
    """Connecting could not be started or completed; ``str()`` is the admin's message."""


class XeroConnectionUnusable(Exception):
    """The connection may not be used for calls; ``str()`` says why and what to do."""


# --- Settings -----------------------------------------------------------------------------------


def xero_redirect_uri() -> str:
    """The callback registered with Xero: ``PUBLIC_BASE_URL`` + ``/oauth/xero/callback/``."""
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("xero-oauth-callback")


def xero_required_scopes() -> frozenset[str]:
    return frozenset(settings.XERO_SCOPES.split())


@sensitive_variables("secret")
def xero_oauth_config() -> pleo_oauth.OAuthConfig:
    """From ``XERO_CLIENT_ID``/``XERO_CLIENT_SECRET``/``XERO_IDENTITY_BASE_URL`` (ValueError)."""
    secret = settings.XERO_CLIENT_SECRET
    if not settings.XERO_CLIENT_ID or not secret:
        raise ValueError("XERO_CLIENT_ID and XERO_CLIENT_SECRET are not set")
    return xero_oauth.oauth_config(
        identity_base_url=settings.XERO_IDENTITY_BASE_URL,
        client_id=settings.XERO_CLIENT_ID,
        client_secret=secret,
    )


def _audit(company: Company, message: str, outcome=AuditEntry.Outcome.OK, **kwargs) -> None:
    audit.record(
        company=company,
        trigger=kwargs.pop("trigger", Trigger.MANUAL),
        step=kwargs.pop("step", AUDIT_STEP),
        message=message,
        run_id=kwargs.pop("run_id", None),
        outcome=outcome,
        **kwargs,
    )


# --- Connect ------------------------------------------------------------------------------------


CONSENT = Consent(
    service="Xero", button="Connect Xero", failed=XeroConnectFailed, redirect_uri=xero_redirect_uri
)


def xero_connection_begin(*, company: Company) -> ConsentStart:
    """The consent page's URL; ``remember`` holds ``company_id``."""
    if not settings.XERO_CLIENT_ID or not settings.XERO_CLIENT_SECRET:
        raise XeroConnectFailed(
            "XERO_CLIENT_ID and XERO_CLIENT_SECRET are not set: add the Xero app's client id "
            "and secret to the environment first."
        )
    return CONSENT.begin(
        xero_oauth.authorize_url,
        where="XERO_LOGIN_BASE_URL",
        remember={"company_id": company.pk},
        login_base_url=settings.XERO_LOGIN_BASE_URL,
        client_id=settings.XERO_CLIENT_ID,
        scopes=settings.XERO_SCOPES,
    )


@sensitive_variables("code", "code_verifier", "tokens", "config")
def xero_connection_complete(*, company_id: int, code: str, code_verifier: str) -> XeroConnection:
    """Exchange ``code``, store the tokens, read ``/connections``. Raises
    :class:`XeroConnectFailed` with the admin's message; nothing is changed then."""
    company = Company.objects.filter(pk=company_id).first()
    if company is None:
        raise XeroConnectFailed("The company no longer exists.")
    try:
        config = xero_oauth_config()
    except ValueError as exc:  # HostNotAllowed is one
        raise XeroConnectFailed(f"Xero's OAuth settings cannot be used: {exc}.") from None
    tokens, received_at = CONSENT.exchange(config, code=code, code_verifier=code_verifier)
    connection, _ = XeroConnection.objects.get_or_create(company=company)
    token_refresh.store_connected_tokens(
        owner=TOKENS,
        pk=connection.pk,
        tokens=tokens,
        received_at=received_at,
        scopes_granted=" ".join((tokens.scope or settings.XERO_SCOPES).split()),
        status_changed_at=clock.now(),
        tenant_choices=[],
    )
    _audit(company, "Connected to Xero (tokens stored); reading the organisations authorised.")
    connection.refresh_from_db()
    return _take_tenant(connection)


def _take_tenant(connection: XeroConnection) -> XeroConnection:
    """``GET /connections``: one organisation is taken; several are offered; none is refused.
    A person is waiting (the consent callback): a spent minute is waited for as the admin's sync
    waits, up to ``INTERACTIVE_BUDGET_WAIT``; past that the admin says so."""
    with xero_client(
        connection=connection, tenant=False, budget_wait=INTERACTIVE_BUDGET_WAIT
    ) as client:
        try:
            tenants = client.connections()
        except (XeroError, BudgetExhausted) as exc:
            raise XeroConnectFailed(f"Reading Xero's /connections failed: {exc}") from None
    choices = [
        {"id": str(t.id), "tenant_id": str(t.tenant_id), "name": t.tenant_name}
        for t in tenants
        if t.tenant_type.upper() in ("", "ORGANISATION")
    ]
    current = str(connection.tenant_id) if connection.tenant_id else None
    if current and any(c["tenant_id"] == current for c in choices):
        chosen = next(c for c in choices if c["tenant_id"] == current)
    elif len(choices) == 1:
        chosen = choices[0]
    else:
        chosen = None
    if not choices:
        xero_connection_mark_needs_reauthorisation(
            connection_id=connection.pk,
            reason="No Xero organisation was authorised at consent: connect again and pick one.",
        )
    elif chosen is None:
        XeroConnection.objects.filter(pk=connection.pk).update(
            tenant_id=None, tenant_name="", connection_id=None, tenant_choices=choices
        )
    else:
        _set_tenant(connection, chosen)
    connection.refresh_from_db()
    return connection


def _set_tenant(connection: XeroConnection, chosen: dict) -> None:
    XeroConnection.objects.filter(pk=connection.pk).update(
        tenant_id=uuid.UUID(chosen["tenant_id"]),
        tenant_name=chosen["name"][:300],
        connection_id=uuid.UUID(chosen["id"]),
        tenant_choices=[],
        updated_at=timezone.now(),
    )
    _audit(connection.company, f"Xero organisation chosen: {chosen['name']}.")


def xero_connection_choose_tenant(*, connection: XeroConnection, tenant_id: str) -> bool:
    """Take ``tenant_id`` among the organisations offered at consent. False when not offered."""
    chosen = next((c for c in connection.tenant_choices if c["tenant_id"] == tenant_id), None)
    if chosen is None:
        return False
    _set_tenant(connection, chosen)
    return True


# --- Status -------------------------------------------------------------------------------------


def xero_connection_mark_needs_reauthorisation(*, connection_id: int, reason: str) -> bool:
    """Needs re-authorisation (the refresh marker cleared), logged, audited and the company's
    people told (``xero_reauthorisation``). The first reason is kept: a connection already not
    OK is left alone (False), so each transition tells once."""
    return token_refresh.token_mark_needs_reauthorisation(
        owner=TOKENS, pk=connection_id, reason=reason
    )


def _marked(connection_id: int, reason: str) -> None:
    connection = XeroConnection.objects.select_related("company").get(pk=connection_id)
    logger.warning("Xero connection %s needs re-authorisation: %s", connection_id, reason)
    _audit(
        connection.company,
        f"Xero connection needs re-authorisation: {reason}",
        AuditEntry.Outcome.ERROR,
    )
    notifications.notification_request(
        kind=notifications.Kind.XERO_REAUTHORISATION, company=connection.company
    )


def xero_connection_unusable_reason(*, connection: XeroConnection | None) -> str | None:
    """Why the company's Xero connection cannot be used now (None when it can)."""
    if connection is None:
        return "The company is not connected to Xero: use 'Connect Xero' on its admin page."
    if connection.status == XeroConnection.Status.NEEDS_REAUTHORISATION:
        return (
            f"The Xero connection needs re-authorisation ({connection.last_error.rstrip('.')}). "
            f"Use 'Reconnect Xero' on the company's admin page."
        )
    if not connection.refresh_token_ciphertext:
        return "The Xero connection has no tokens: use 'Connect Xero' on the company's admin page."
    if connection.tenant_id is None:
        return (
            "No Xero organisation is chosen for the company: choose one on the company's admin "
            "page."
        )
    return None


# --- Tokens (the shared compare-and-set loop) ----------------------------------------------------


def _read(connection_id: int) -> token_refresh.TokenRow:
    values = (
        XeroConnection.objects.filter(pk=connection_id)
        .values("company__name", *token_refresh.ROW_FIELDS)
        .first()
    )
    if values is None:
        raise XeroConnectionUnusable(f"Xero connection {connection_id} no longer exists.")
    name = values.pop("company__name")
    return token_refresh.TokenRow(name=f"Xero connection of {name}", **values)


def _unusable(name: str, status: str, reason: str) -> XeroConnectionUnusable:
    if status == XeroConnection.Status.NEEDS_REAUTHORISATION:
        return XeroConnectionUnusable(
            f"The {name} needs re-authorisation: {reason.rstrip('.')}. Use 'Reconnect Xero' on "
            f"the company's admin page."
        )
    return XeroConnectionUnusable(f"The {name}: {reason.rstrip('.')}.")


TOKENS = token_refresh.TokenOwner(
    model=XeroConnection,
    service="Xero",
    label="Xero connection",
    read=_read,
    config=lambda _pk: xero_oauth_config(),
    marked=_marked,
    unusable=_unusable,
)


# Xero's limits (docs/xero-openapi/README.md): per organisation 60 calls a minute, 5,000 a day
# and 5 in flight; per app 10,000 a minute. Our shared budgets (every process, ``budget``) stay
# under each, so processes calling Xero never meet its 429. In flight: one run holds a company
# (its lease) and calls Xero one call at a time, so an organisation never sees more than one of
# ours at once from a run.
#
# Each is GCRA (``budget``): any window holds at most ``limit`` whatever the burst, and past its
# burst a budget grants ``limit - burst`` a window, so the burst is bought with sustained pace.
# Where Xero counts (its clock, on arrival) a call may land later than we granted it; but a caller
# sends its next call only after the previous answer, so each caller in flight adds at most one
# call to any minute Xero sees: at most ``limit`` + the callers of the organisation at once. The
# headroom under Xero's figure is for those (and the machines' clocks, NTP-close, with the
# database backend), not the burst.
#
# Minute: 55 leaves 5 for callers in flight at once (the run, the daily sync, people's syncs and
# contract checks in the admin). A burst of 5 (a sync or a contract check from idle: 4 or 5
# calls) leaves a steady 50 a minute: a 1,000-item job with its receipts (1,022 calls) is paced
# at ~20 minutes against Xero's 17 (at half, the default, it was 28 a minute: 36 minutes). A
# caller that may not wait long (the admin's sync and contract check) waits up to
# ``INTERACTIVE_BUDGET_WAIT`` a call.
# Day: its burst is half the day (the default), not a minute's worth: with a burst of 55 it
# granted one call every 18 s after the first 55, and a 1,000-item job (over 1,000 calls) was
# deferred run after run until it expired (tests/xero/test_limits_slow.py). A small day burst
# would pace every job by the day. With 2,450 at once, two 1,000-item jobs the same day go at the
# minute's pace (2,044 calls); a third that day gets what is left plus 2,450 a day (one call
# every 35 s): the plan books the items that fit before its deadline, the rest are exported again.
# App minute: 9,500 leaves 500 for callers in flight across every organisation; a burst of 500
# (that many callers starting at once) leaves a steady 9,000 a minute (180 organisations at their
# full pace; half, the default, was 4,750: 95).
XERO_BUDGET = budget.Rate(limit=55, window=60.0, burst=5)
XERO_DAY_BUDGET = budget.Rate(limit=4900, window=86400.0)
XERO_APP_BUDGET = budget.Rate(limit=9500, window=60.0, burst=500)
# A caller that is not a run (the admin's sync and contract check) waits for a spent minute up to
# this long per call: a burst of 5 is spent by a sync with contacts.
INTERACTIVE_BUDGET_WAIT = 5.0
# Xero's answers say what is left (``X-MinLimit-Remaining``…); at 0 the next call waits this long.
REMAINING_ZERO_WAIT = {"X-MinLimit-Remaining": 60.0, "X-AppMinLimit-Remaining": 60.0}


class XeroBudget:
    """The ``before_request`` hook of a Xero client: one request from each budget (the
    organisation's minute and day, the app's minute), and Xero's own remaining counts.

    A minute budget that is spent is waited for here when it has room again within
    ``wait_seconds``, calling ``heartbeat`` (the run's lease) at least every 5 seconds; a longer
    wait, or the day budget, raises :class:`~exports.pleo.errors.BudgetExhausted` (nothing was
    sent; the run is deferred). ``waited`` adds up the seconds waited."""

    def __init__(
        self,
        tenant_id,
        *,
        wait_seconds: float = 0.0,
        heartbeat: Callable[[], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.budgets = (
            (budget.BudgetHook(f"xero_tenant:{tenant_id}", XERO_BUDGET), True),
            (budget.BudgetHook(f"xero_tenant_day:{tenant_id}", XERO_DAY_BUDGET), False),
            (budget.BudgetHook("xero_app", XERO_APP_BUDGET), True),
        )
        self.allowance = float(wait_seconds)
        self.heartbeat = heartbeat
        self.sleep = sleep
        self.waited = 0.0
        self.client: XeroClient | None = None

    def wait(self, seconds: float, exc: BudgetExhausted | None = None) -> None:
        if exc is not None and seconds > self.allowance:
            raise exc
        self.pause(min(seconds, self.allowance))

    def pause(self, seconds: float) -> None:
        """Sleep ``seconds`` (also the client's wait before a retry: a 429's ``Retry-After``),
        renewing the run's lease at least every 5 seconds."""
        left = seconds
        self.waited += max(left, 0.0)
        while left > 0:
            step = min(left, 5.0)
            self.sleep(step)
            left -= step
            if self.heartbeat is not None:
                self.heartbeat()

    def __call__(self, method: str, path: str) -> None:
        remaining = self.client.rate_limits if self.client is not None else {}
        for header, seconds in REMAINING_ZERO_WAIT.items():
            if remaining.get(header) == 0:
                remaining.pop(header)
                self.wait(seconds)
        for hook, waitable in self.budgets:
            while True:
                try:
                    hook(method, path)
                    break
                except BudgetExhausted as exc:
                    if not waitable:
                        raise
                    seconds = max((exc.retry_at - clock.now()).total_seconds(), 0.05)
                    self.wait(seconds, exc)

    @property
    def key(self) -> str:
        """The organisation's minute budget's key (the one a busy job meets first)."""
        return self.budgets[0][0].key

    @property
    def rate(self) -> budget.Rate:
        return XERO_BUDGET

    def __repr__(self) -> str:
        return f"XeroBudget({self.key!r})"


def xero_budget_hook(*, connection: XeroConnection, **kwargs) -> XeroBudget | None:
    """The budgets of a Xero organisation (shared by every process); None without a tenant."""
    if not connection.tenant_id:
        return None
    return XeroBudget(connection.tenant_id, **kwargs)


def xero_client(
    *,
    connection: XeroConnection,
    tenant: bool = True,
    trigger: str = Trigger.MANUAL,
    run_id: uuid.UUID | None = None,
    on_call: Callable[[str, str, int | None], None] | None = None,
    budget_wait: float = 0.0,
    heartbeat: Callable[[], None] | None = None,
) -> XeroClient:
    """A client for ``connection`` (its tenant unless ``tenant`` is False): tokens from the
    shared refresh loop, every HTTP call audited (and passed to ``on_call``), a 401 after a
    refresh or a 403 marks the connection."""
    connection_id = connection.pk
    company = connection.company
    bearer = token_refresh.TokenBearer(owner=TOKENS, pk=connection_id)

    def on_auth_failure(exc: PleoAuthError) -> None:
        if exc.status == 401 and bearer.refreshed:
            reason = f"Xero refused a freshly refreshed access token ({exc}). Reconnect Xero."
        elif exc.status == 403:
            # The organisation was disconnected from the app at Xero, or a scope is missing:
            # either way only a new consent helps.
            reason = (
                f"Xero refused access to the organisation ({exc}): it was disconnected from "
                f"the app or a scope is missing. Reconnect Xero."
            )
        else:
            return
        xero_connection_mark_needs_reauthorisation(connection_id=connection_id, reason=reason)

    def after_response(method: str, path: str, status: int | None) -> None:
        ok = status is not None and status < 400
        _audit(
            company,
            f"Xero {method} {path} -> {status or 'no answer'}",
            AuditEntry.Outcome.INFO if ok else AuditEntry.Outcome.WARNING,
            trigger=trigger,
            step=HTTP_AUDIT_STEP,
            run_id=run_id,
            http=audit.HttpCall(method=method, path=path, status=status),
        )
        if on_call is not None:
            on_call(method, path, status)

    hook = xero_budget_hook(connection=connection, wait_seconds=budget_wait, heartbeat=heartbeat)
    config = config_from_settings()
    if budget_wait > config.retry_after_cap:
        # Xero's own 429 for a spent minute (``minute``, ``appminute``: our budgets did not see
        # the calls that spent it) is waited for inside the run like our budget's, up to the
        # same allowance, the lease renewed while waiting (``XeroBudget.pause``).
        config = dataclasses.replace(config, retry_after_cap=budget_wait)
    client = XeroClient(
        before_request=hook,
        config=config,
        sleep=hook.pause if hook is not None else time.sleep,
        auth=bearer.auth,
        on_auth_failure=on_auth_failure,
        tenant_id=connection.tenant_id if tenant else None,
        after_response=after_response,
        request_id=str(run_id) if run_id else None,
    )
    if hook is not None:
        hook.client = client  # Xero's remaining counts, read before each call
    return client


__all__ = [
    "CONSENT",
    "TOKENS",
    "XeroConnectFailed",
    "XeroConnectionUnusable",
    "xero_budget_hook",
    "xero_connection_unusable_reason",
    "xero_oauth_config",
    "xero_redirect_uri",
    "xero_required_scopes",
    "xero_client",
    "xero_connection_begin",
    "xero_connection_choose_tenant",
    "xero_connection_complete",
    "xero_connection_mark_needs_reauthorisation",
]
