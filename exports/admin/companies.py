"""The company admin: list, change page, "Check now" and the release of an unknown-status hold."""

from __future__ import annotations

from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.html import format_html

from exports.admin import live
from exports.admin.actions import enqueue_checks
from exports.admin.failing import CompanyFailingAdminMixin, CompanyListing
from exports.admin.filters import LastCheckOutcomeFilter, XeroStatusListFilter
from exports.admin.forms import CompanyForm, CompanyFormMixin
from exports.admin.mixins import admin_views, warning_link
from exports.admin.preview import may_preview, preview_page
from exports.admin.reconciliation import may_reconcile, reconciliation_page
from exports.admin.scoping import CompanyScopedAdminMixin
from exports.admin.xero import CompanyXeroAdminMixin
from exports.models import Company, Credential, ExportJob
from exports.selectors.company_access import user_sees_all_companies
from exports.timestamps import timestamp_text

DELIVERIES_LISTING = CompanyListing(
    model="webhookdelivery",
    row='<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
    cells=lambda d: (
        reverse("admin:exports_webhookdelivery_change", args=[d.pk]),
        timestamp_text(d.received_at),
        d.event_type,
        d.webhook_id,
        d.pleo_job_id or "",
        d.get_state_display(),
    ),
    table="<table><tr><th>Received</th><th>Event</th><th>Webhook id</th><th>Job</th>"
    '<th>State</th></tr>{rows}</table><p><a href="{url}">All deliveries of this company'
    "</a> (reprocess failed ones there)</p>",
)


@admin.register(Company)
class CompanyAdmin(
    CompanyXeroAdminMixin,
    CompanyFailingAdminMixin,
    CompanyScopedAdminMixin,
    CompanyFormMixin,
    admin.ModelAdmin,
):
    form = CompanyForm
    list_display = (
        "name",
        "pleo_company_id",
        "active",
        "credential",
        "last_check_at",
        "last_check_result",
        "job_in_progress",
        "credential_warning",
        "xero_warning",
    )
    list_filter = ("active", LastCheckOutcomeFilter, XeroStatusListFilter, "credential")
    search_fields = ("name", "pleo_company_id")
    list_select_related = ("credential", "xero_connection")
    readonly_fields = (
        "last_check_at",
        "last_check_result",
        "last_check_error",
        "failing_state",
        "lease_holder",
        "lease_expires_at",
        "recheck_requested",
        "created_at",
        "updated_at",
        "deliveries_received",
        "recent_jobs",
        "recent_audit",
    )
    fields = tuple(CompanyForm.Meta.fields) + readonly_fields
    actions = ["check_now", "check_now_recover", "release_unknown_status"]
    DELIVERIES_SHOWN = 20

    @admin.display(description="Webhook deliveries received")
    def deliveries_received(self, obj):
        """The newest deliveries for this company (read-only; reprocess from their own list)."""
        return DELIVERIES_LISTING.html(obj, self._newest_deliveries)

    def _newest_deliveries(self, *, company):
        return list(company.deliveries.order_by("-received_at", "-id")[: self.DELIVERIES_SHOWN])

    change_form_template = "admin/exports/company/change_form.html"

    @admin.action(description="Check now", permissions=["check_now"])
    def check_now(self, request, queryset):
        enqueue_checks(self, request, queryset, recover=False)

    @admin.action(description="Check now (recover)", permissions=["check_now"])
    def check_now_recover(self, request, queryset):
        enqueue_checks(self, request, queryset, recover=True)

    def has_check_now_permission(self, request):
        return request.user.has_perm("exports.check_now")

    @admin.action(
        description="Release company (unknown job status)", permissions=["release_unknown_status"]
    )
    def release_unknown_status(self, request, queryset):
        from exports.services.unknown_status import company_release_unknown_status

        released = []
        for company in queryset:
            user_name = request.user.get_username()
            if company_release_unknown_status(company=company, user_name=user_name):
                released.append(company)
            else:
                self.message_user(
                    request,
                    f"{company} is not held by a job in an unknown status; skipped.",
                    messages.WARNING,
                )
        if released:
            enqueue_checks(self, request, released, recover=False)

    def has_release_unknown_status_permission(self, request):
        return request.user.has_perm("exports.release_unknown_status")

    def get_urls(self):
        own = admin_views(
            self,
            ("live-status/", live.live_status_view, "exports_live_status"),
            (
                "<path:object_id>/reconciliation/",
                self.reconciliation_view,
                "exports_company_reconciliation",
            ),
            ("<path:object_id>/preview/", self.preview_view, "exports_company_preview"),
            ("<int:company_id>/check-now/", self.check_now_view, "exports_company_check_now"),
        )
        return own + super().get_urls()

    def check_now_view(self, request, company_id):
        if request.method != "POST" or not self.has_check_now_permission(request):
            self.message_user(request, "You may not trigger checks.", messages.ERROR)
        else:
            company = get_object_or_404(self.get_queryset(request), pk=company_id)
            enqueue_checks(self, request, [company], recover=request.POST.get("recover") == "1")
        return redirect("admin:exports_company_change", company_id)

    def reconciliation_view(self, request, object_id):
        company = get_object_or_404(self.get_queryset(request), pk=object_id)
        return reconciliation_page(self, request, company=company)

    def preview_view(self, request, object_id):
        company = get_object_or_404(self.get_queryset(request), pk=object_id)
        return preview_page(self, request, company=company)

    def get_readonly_fields(self, request, obj=None):
        """A company-scoped user does not move a company to another credential."""
        fields = super().get_readonly_fields(request, obj)
        if user_sees_all_companies(user=request.user):
            return fields
        return ("credential", *fields)

    def render_change_form(self, request, context, *args, **kwargs):
        context["can_check_now"] = self.has_check_now_permission(request)
        context["can_preview"] = may_preview(request)
        context["can_reconcile"] = may_reconcile(request)
        return super().render_change_form(request, context, *args, **kwargs)

    @admin.display(description="Job in progress")
    def job_in_progress(self, obj):
        job = (
            obj.export_jobs.filter(status=ExportJob.Status.IN_PROGRESS)
            .order_by("created_at")
            .first()
        )
        if job is None:
            return "-"
        url = reverse("admin:exports_exportjob_change", args=[job.pk])
        return format_html('<a href="{}">{}</a>', url, str(job.pleo_job_id)[:8])

    @admin.display(description="Credential warning")
    def credential_warning(self, obj):
        credential = obj.credential
        url = reverse("admin:exports_credential_change", args=[credential.pk])
        if credential.status == Credential.Status.NEEDS_REAUTHORISATION:
            return warning_link(url, "Needs re-authorisation: reconnect to Pleo", bold=True)
        if credential.status == Credential.Status.INVALID:
            return warning_link(url, "Credential invalid")
        return ""
