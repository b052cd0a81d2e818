"""Xero in the admin: the company page's connection panel and buttons, the connection's own
(read-only) page, the mapping (editable) and the page of Pleo codes with no valid mapping.

Thin: the buttons post to :mod:`exports.xero_views`; the work is in
``exports.services.xero_connections``/``xero_sync``/``xero_mapping``. Tokens are never shown
(``SecretHintsAdminMixin``; ``exports.E030``).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import reverse

from exports.admin.mixins import admin_views, warning_link
from exports.admin.scoping import CompanyScopedAdminMixin
from exports.admin.secrets import SecretHintsAdminMixin
from exports.models import XeroConnection, XeroMapping
from exports.selectors.company_access import company_list_for_user
from exports.services import xero_connections, xero_mapping, xero_sync
from exports.timestamps import timestamp_text

CONNECT_PERMISSION = "exports.connect_xero"


class CompanyXeroAdminMixin:
    """For the company admin: the Xero URLs, the panel's context and the status column."""

    def get_urls(self):
        from exports import xero_views

        own = admin_views(
            self,
            ("<int:company_id>/xero/connect/", xero_views.connect, "exports_company_xero_connect"),
            (
                "<int:company_id>/xero/tenant/",
                xero_views.choose_tenant,
                "exports_company_xero_tenant",
            ),
            ("<int:company_id>/xero/sync/", xero_views.sync, "exports_company_xero_sync"),
        )
        return own + super().get_urls()

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        if obj is not None and obj.pk:
            connection = XeroConnection.objects.filter(company=obj).first()
            context["xero"] = {
                "connection": connection,
                "problem": xero_connections.xero_connection_unusable_reason(connection=connection),
                "can_connect": request.user.has_perm(CONNECT_PERMISSION),
                "reconnect": connection is not None,
                "unmapped_url": reverse("admin:exports_xeromapping_unmapped")
                + f"?company={obj.pk}",
            }
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

    @admin.display(description="Xero")
    def xero_warning(self, obj):
        connection = getattr(obj, "xero_connection", None)
        if connection is None:
            return ""
        if connection.status == XeroConnection.Status.NEEDS_REAUTHORISATION:
            url = reverse("admin:exports_company_change", args=[obj.pk])
            return warning_link(url, "Xero needs re-authorisation", bold=True)
        return connection.tenant_name or "choose organisation"


BOOKING_SETTINGS = ("default_method", "document_status", "lock_date_policy")


@admin.register(XeroConnection)
class XeroConnectionAdmin(SecretHintsAdminMixin, CompanyScopedAdminMixin, admin.ModelAdmin):
    list_display = ("company", "tenant_name", "status", "base_currency", "sync_state")
    list_filter = ("status",)
    search_fields = ("company__name", "tenant_name")
    list_select_related = ("company",)
    fields = (
        "company",
        "tenant_name",
        "tenant_id",
        "connection_id",
        "status",
        "last_error",
        "status_changed_at",
        "scopes_granted",
        "base_currency",
        "access_token_expires_at",
        "access_token",
        "refresh_token",
        "sync_state",
        "synced",
        # How items are booked (exports.services.xero_booking): the only editable fields.
        "default_method",
        "document_status",
        "lock_date_policy",
    )
    readonly_fields = tuple(f for f in fields if f not in BOOKING_SETTINGS)
    actions = ["sync_now"]

    def has_add_permission(self, request):
        return False  # a connection is made by "Connect Xero" on the company page

    @admin.display(description="Last sync")
    def sync_state(self, obj):
        if obj.last_sync_at is None:
            return "Never synced."
        return f"{timestamp_text(obj.last_sync_at)}: {obj.last_sync_result}"

    @admin.display(description="Synced from Xero")
    def synced(self, obj):
        return (
            f"{obj.accounts.count()} accounts, {obj.tax_rates.count()} tax rates, "
            f"{obj.tracking_options.count()} tracking options, {obj.contacts.count()} contacts"
        )

    @admin.action(description="Sync from Xero (with contacts)", permissions=["connect"])
    def sync_now(self, request, queryset):
        for connection in queryset.select_related("company"):
            result = xero_sync.xero_sync_run(connection=connection, include_contacts=True)
            level = messages.SUCCESS if result.ok else messages.WARNING
            self.message_user(request, f"{connection.company}: {result.message}", level)

    def has_connect_permission(self, request):
        return request.user.has_perm(CONNECT_PERMISSION)


@admin.register(XeroMapping)
class XeroMappingAdmin(CompanyScopedAdminMixin, admin.ModelAdmin):
    list_display = ("pleo_code", "kind", "company", "xero_code", "proposed", "validity")
    list_editable = ("xero_code",)
    list_filter = ("kind", "proposed", "company")
    search_fields = ("pleo_code", "xero_code")
    list_select_related = ("company",)
    fields = ("company", "kind", "pleo_code", "xero_code", "proposed")
    readonly_fields = ("proposed",)
    scoped_users_may_add = True
    change_list_template = "admin/exports/xeromapping/change_list.html"

    def save_model(self, request, obj, form, change):
        if "xero_code" in form.changed_data:
            obj.proposed = False  # an operator's choice from now on
        super().save_model(request, obj, form, change)

    @admin.display(description="Valid in Xero")
    def validity(self, obj):
        connection = XeroConnection.objects.filter(company_id=obj.company_id).first()
        if not obj.xero_code:
            return "no Xero code"
        if connection is None:
            return "not connected"
        problem = xero_mapping.xero_mapping_target_problem(
            connection=connection, kind=obj.kind, xero_code=obj.xero_code
        )
        return problem or "✓"

    def get_urls(self):
        own = admin_views(self, ("unmapped/", self.unmapped_view, "exports_xeromapping_unmapped"))
        return own + super().get_urls()

    def unmapped_view(self, request):
        """Every Pleo code seen in the companies' export items with no valid Xero mapping."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        companies = company_list_for_user(user=request.user)
        wanted = request.GET.get("company", "")
        if wanted.isdigit():
            companies = companies.filter(pk=int(wanted))
        sections = [
            {"company": company, "rows": xero_mapping.xero_mapping_unmapped(company=company)}
            for company in companies.filter(xero_connection__isnull=False)
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Pleo codes with no valid Xero mapping",
            "sections": sections,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/exports/xeromapping/unmapped.html", context)
