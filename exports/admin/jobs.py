"""Export jobs with their items and audit trail, the audit table and the worker heartbeats."""

from __future__ import annotations

import re

from django.contrib import admin, messages
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.html import format_html

from exports.admin.failing import JobFailingAdminMixin
from exports.admin.filters import AgeListFilter, ExpiryRiskListFilter
from exports.admin.job_page import (
    NONE_YET_TABULAR,
    ExportJobPageMixin,
    JobLinkMixin,
    RunLinkMixin,
)
from exports.admin.mixins import ReadOnlyMixin, ViewOnlyMixin, admin_views
from exports.admin.preview import may_preview, preview_page
from exports.admin.receipts import AuditPackAdminMixin, ItemReceiptsInlineMixin
from exports.admin.scoping import CompanyScopedAdminMixin, ViewOnlyTabularInline
from exports.models import (
    AuditEntry,
    ExportItemRecord,
    ExportJob,
    JournalEntry,
    Trigger,
    WorkerHeartbeat,
)
from exports.services.dispatch import company_check_enqueue

_UUID_IN_PATH = re.compile(r"([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def http_call_summary(entry) -> str:
    """``PUT /v3/export-jobs/1a2b3c4d…/items → 200``: ids shortened so the table stays readable."""
    if not entry.http_method:
        return ""
    path = _UUID_IN_PATH.sub(r"\1…", entry.http_path)
    return f"{entry.http_method} {path} → {entry.http_status or '—'}"


# An audit entry's columns on the job page and in the audit list alike: what happened first
# (step, outcome, message); how (trigger, call, worker) after it.
AUDIT_COLUMNS = ("step", "outcome", "message", "trigger", "http_call", "worker")


class AuditColumnsMixin:
    """The displays of :data:`AUDIT_COLUMNS` that are not fields: ``http_call``."""

    @admin.display(description="HTTP")
    def http_call(self, obj):
        return http_call_summary(obj)


class AuditInline(AuditColumnsMixin, RunLinkMixin, ViewOnlyTabularInline):
    model = AuditEntry
    fk_name = "export_job"
    template = NONE_YET_TABULAR
    ordering = ("-created_at", "-id")
    fields = ("created_at", *AUDIT_COLUMNS, "run_link")


class ExportItemRecordInline(ItemReceiptsInlineMixin, ViewOnlyTabularInline):
    """The job's items as we processed them, with their outcome, ledger entry and receipts."""

    model = ExportItemRecord
    fk_name = "export_job"
    template = NONE_YET_TABULAR
    verbose_name = "item"
    verbose_name_plural = "items (as this bridge processed them)"
    fields = (
        "accounting_entry_id",
        "state",
        "result",
        "ledger_entry",
        "exported_at",
        "failure_reason_type",
        "failure_reason",
        "reported_at",
        "receipts_shown",
    )

    @admin.display(description="Ledger entry")
    def ledger_entry(self, obj):
        pk = JournalEntry.pk_from_number(obj.external_id) if obj.adapter == "journal" else None
        if pk is not None and JournalEntry.objects.filter(pk=pk).exists():
            url = reverse("admin:exports_journalentry_change", args=[pk])
            return format_html('<a href="{}">{}</a>', url, obj.external_id)
        if obj.external_url.startswith(("https://", "http://")):
            return format_html('<a href="{}">{}</a>', obj.external_url, obj.external_id or "link")
        return obj.external_id or "-"


@admin.register(ExportJob)
class ExportJobAdmin(
    AuditPackAdminMixin,
    JobFailingAdminMixin,
    ExportJobPageMixin,
    CompanyScopedAdminMixin,
    ReadOnlyMixin,
    admin.ModelAdmin,
):
    # The page's groups and displays: exports.admin.job_page.
    list_display = (
        "pleo_job_id",
        "company",
        "status",
        "claim",
        "created_at",
        "claimed_by_us_at",
        "number_of_items",
        "expiry_note",
    )
    list_filter = ("status", ExpiryRiskListFilter, "claim", "company")
    search_fields = ("pleo_job_id",)
    list_select_related = ("company",)
    date_hierarchy = "created_at"
    inlines = [ExportItemRecordInline, AuditInline]
    actions = ["adopt_job"]

    @admin.action(description="Adopt job (take ownership)", permissions=["adopt"])
    def adopt_job(self, request, queryset):
        from exports.services.start_flow import job_adopt

        adopted = 0
        for job in queryset:
            if job.status != ExportJob.Status.IN_PROGRESS or job.is_ours:
                self.message_user(
                    request,
                    f"Job {job.pleo_job_id} is not an in-progress job owned elsewhere; skipped.",
                    messages.WARNING,
                )
                continue
            job_adopt(job=job, user_name=request.user.get_username())
            company_check_enqueue(company_id=job.company_id, trigger=Trigger.MANUAL, recover=True)
            adopted += 1
        if adopted:
            self.message_user(
                request, f"{adopted} job(s) adopted; a recovery check was queued.", messages.SUCCESS
            )

    def get_urls(self):
        own = admin_views(
            self, ("<path:object_id>/preview/", self.preview_view, "exports_exportjob_preview")
        )
        return own + super().get_urls()

    def preview_view(self, request, object_id):
        job = get_object_or_404(self.get_queryset(request).select_related("company"), pk=object_id)
        return preview_page(self, request, company=job.company, job=job)

    def render_change_form(self, request, context, *args, **kwargs):
        context["can_preview"] = may_preview(request)
        return super().render_change_form(request, context, *args, **kwargs)

    def has_adopt_permission(self, request):
        return request.user.has_perm("exports.adopt_exportjob")

    @admin.display(description="Started by us", ordering="claimed_at")
    def claimed_by_us_at(self, obj):
        return obj.claimed_at

    @admin.display(description="Expiry")
    def expiry_note(self, obj):
        if obj.expired_detected_at:
            return "Expired before it could be started: resubmit the export from Pleo's web app."
        return ""


@admin.register(AuditEntry)
class AuditEntryAdmin(
    AuditColumnsMixin, JobLinkMixin, CompanyScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin
):
    list_display = ("created_at", "company_link", "job_link", *AUDIT_COLUMNS)
    list_filter = ("outcome", AgeListFilter, "step", "trigger", "company")
    date_hierarchy = "created_at"
    search_fields = ("message", "export_job__pleo_job_id")
    list_select_related = ("company", "export_job")
    ordering = ("-created_at", "-id")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.display(description="Company")
    def company_link(self, obj):
        if obj.company_id is None:
            return "-"
        url = reverse("admin:exports_company_change", args=[obj.company_id])
        return format_html('<a href="{}">{}</a>', url, obj.company.name)


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(CompanyScopedAdminMixin, ViewOnlyMixin, admin.ModelAdmin):
    list_display = ("name", "started_at", "last_seen_at")
