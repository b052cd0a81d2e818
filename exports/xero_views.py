"""Connect a company to Xero from the admin: the start, the callback and the tenant choice.

``connect`` (``admin/exports/company/<id>/xero/connect/``, POST only: the "Connect Xero" button;
CSRF-checked by the admin) keeps a fresh PKCE verifier and ``state`` in the admin user's session
(:func:`exports.oauth_views.remember_attempt`) and sends the browser to Xero's consent page.
``callback`` (``/oauth/xero/callback/``, staff only) takes the answer: the ``state`` must be one
this session started (single-use), then the code is exchanged, the tokens stored and
``/connections`` read; with one organisation the connection is complete (and synced), with
several the company page offers them (``choose_tenant``, POST). Nothing secret is logged or shown.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_POST

from exports.models import Company, XeroConnection
from exports.oauth_views import answer_problem, foreign_answer, remember_attempt, take_attempt
from exports.selectors.company_access import company_list_for_user
from exports.services import xero_connections, xero_sync

SESSION_KEY = "xero_oauth_connect"
PERMISSION = "exports.connect_xero"


def _company_page(company_id) -> str:
    return reverse("admin:exports_company_change", args=[company_id])


def _visible_company(request, company_id) -> Company:
    return get_object_or_404(company_list_for_user(user=request.user), pk=company_id)


@never_cache
@require_POST
@sensitive_variables()
def connect(request, company_id: int):
    company = _visible_company(request, company_id)
    if not request.user.has_perm(PERMISSION):
        messages.error(request, "You may not connect companies to Xero.")
        return redirect(_company_page(company.pk))
    try:
        start = xero_connections.xero_connection_begin(company=company)
    except xero_connections.XeroConnectFailed as exc:
        messages.error(request, f"Cannot connect to Xero: {exc}")
        return redirect(_company_page(company.pk))
    remember_attempt(
        request.session,
        SESSION_KEY,
        start.state,
        {"verifier": start.verifier, "company_id": start.company_id},
    )
    return HttpResponseRedirect(start.url)


def _sync_message(request, connection: XeroConnection) -> None:
    result = xero_sync.xero_sync_run(connection=connection)
    (messages.success if result.ok else messages.warning)(request, result.message)


@never_cache
@staff_member_required
@sensitive_variables()
def callback(request):
    """Xero sends the browser back here with ``code`` + ``state`` or ``error`` + ``state``."""
    attempt = take_attempt(request.session, SESSION_KEY, request.GET.get("state") or "")
    if attempt is None:
        return foreign_answer(request, "Xero", "Connect Xero", "admin:exports_company_changelist")
    page = _company_page(attempt["company_id"])
    visible = company_list_for_user(user=request.user)
    if not request.user.has_perm(PERMISSION) or not visible.filter(pk=attempt["company_id"]):
        messages.error(request, "You may not connect companies to Xero.")
        return redirect(page)
    problem = answer_problem(request, "Xero", "the company")
    if problem:
        messages.error(request, problem)
        return redirect(page)
    code = request.GET["code"]
    try:
        connection = xero_connections.xero_connection_complete(
            company_id=attempt["company_id"], code=code, code_verifier=attempt["verifier"]
        )
    except xero_connections.XeroConnectFailed as exc:
        messages.error(request, f"Connecting to Xero failed: {exc}")
        return redirect(page)
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
    return redirect(page)


@never_cache
@require_POST
def choose_tenant(request, company_id: int):
    company = _visible_company(request, company_id)
    connection = XeroConnection.objects.filter(company=company).first()
    if not request.user.has_perm(PERMISSION) or connection is None:
        messages.error(request, "You may not choose the company's Xero organisation.")
    elif xero_connections.xero_connection_choose_tenant(
        connection=connection, tenant_id=request.POST.get("tenant_id", "")
    ):
        connection.refresh_from_db()
        messages.success(request, f"Xero organisation '{connection.tenant_name}' chosen.")
        _sync_message(request, connection)
    else:
        messages.error(request, "That organisation was not offered by Xero: connect again.")
    return redirect(_company_page(company.pk))


@never_cache
@require_POST
def sync(request, company_id: int):
    company = _visible_company(request, company_id)
    connection = XeroConnection.objects.filter(company=company).first()
    if not request.user.has_perm(PERMISSION) or connection is None:
        messages.error(request, "You may not sync the company from Xero.")
    else:
        result = xero_sync.xero_sync_run(
            connection=connection, include_contacts=request.POST.get("contacts") == "1"
        )
        (messages.success if result.ok else messages.warning)(request, result.message)
    return redirect(_company_page(company.pk))
