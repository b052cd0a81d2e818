"""Connect a company to Xero from the admin: the start, the callback and the tenant choice.

``connect`` (``admin/exports/company/<id>/xero/connect/``, POST only: the "Connect Xero" button;
CSRF-checked by the admin) keeps a fresh PKCE verifier and ``state`` in the admin user's session
(:class:`exports.consent_views.ConsentViews`, shared with Pleo) and sends the browser to Xero's
consent page.
``callback`` (``/oauth/xero/callback/``, staff only) takes the answer: the ``state`` must be one
this session started (single-use), then the code is exchanged, the tokens stored and
``/connections`` read; with one organisation the connection is complete (and synced), with
several the company page offers them (``choose_tenant``, POST). Nothing secret is logged or shown.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_POST

from exports.consent_views import ConsentViews
from exports.models import Company, XeroConnection
from exports.selectors.company_access import company_list_for_user
from exports.services import xero_connections, xero_sync

SESSION_KEY = "xero_oauth_connect"
PERMISSION = "exports.connect_xero"
VIEWS = ConsentViews(
    consent=xero_connections.CONSENT,
    session_key=SESSION_KEY,
    permission=PERMISSION,
    denied="You may not connect companies to Xero.",
    model="exports_company",
    id_key="company_id",
    subject="the company",
    visible=lambda user: company_list_for_user(user=user),
)


def _visible_company(request, company_id) -> Company:
    return get_object_or_404(company_list_for_user(user=request.user), pk=company_id)


@never_cache
@require_POST
@sensitive_variables()
def connect(request, company_id: int):
    company = _visible_company(request, company_id)
    return VIEWS.start(
        request, company.pk, lambda: xero_connections.xero_connection_begin(company=company)
    )


def _sync_message(request, connection: XeroConnection, include_contacts: bool = False) -> None:
    result = xero_sync.xero_sync_run(connection=connection, include_contacts=include_contacts)
    (messages.success if result.ok else messages.warning)(request, result.message)


@sensitive_variables()
def _complete(attempt: dict, code: str) -> XeroConnection:
    return xero_connections.xero_connection_complete(
        company_id=attempt["company_id"], code=code, code_verifier=attempt["verifier"]
    )


def _report(request, connection: XeroConnection) -> None:
    if connection.tenant_id is None and connection.tenant_choices:
        messages.warning(
            request,
            "Connected to Xero. Several organisations were authorised: choose the one for "
            "this company below.",
        )
    elif connection.tenant_id is not None:
        messages.success(request, f"Connected to Xero organisation '{connection.tenant_name}'.")
        _sync_message(request, connection)
    else:
        messages.error(request, f"Connecting to Xero failed: {connection.last_error}")


@never_cache
@staff_member_required
@sensitive_variables()
def callback(request):
    """Xero sends the browser back here with ``code`` + ``state`` or ``error`` + ``state``."""
    return VIEWS.finish(request, _complete, _report)


def _connection(request, company_id, denied: str) -> tuple[str, XeroConnection | None]:
    """The company's page, and its Xero connection when the user may act on it (else None,
    ``denied`` said)."""
    company = _visible_company(request, company_id)
    connection = XeroConnection.objects.filter(company=company).first()
    if not request.user.has_perm(PERMISSION) or connection is None:
        messages.error(request, denied)
        connection = None
    return VIEWS.page(company.pk), connection


@never_cache
@require_POST
def choose_tenant(request, company_id: int):
    page, connection = _connection(
        request, company_id, "You may not choose the company's Xero organisation."
    )
    if connection is None:
        pass
    elif xero_connections.xero_connection_choose_tenant(
        connection=connection, tenant_id=request.POST.get("tenant_id", "")
    ):
        connection.refresh_from_db()
        messages.success(request, f"Xero organisation '{connection.tenant_name}' chosen.")
        _sync_message(request, connection)
    else:
        messages.error(request, "That organisation was not offered by Xero: connect again.")
    return redirect(page)


@never_cache
@require_POST
def sync(request, company_id: int):
    page, connection = _connection(request, company_id, "You may not sync the company from Xero.")
    if connection is not None:
        contacts = request.POST.get("contacts") == "1"
        _sync_message(request, connection, include_contacts=contacts)
    return redirect(page)
