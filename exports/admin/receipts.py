"""Receipts in the admin: the archive's list, the checked download, receipts on the job's items
and on journal entries, and the job's audit pack.

Downloads go through :meth:`ReceiptAdmin.download_view` only: it needs the permission
``exports.download_receipt`` (403 without it) and a receipt of one of the user's companies (404
otherwise), and streams the file (``FileResponse``) as an attachment named by
``exports.receipts.files`` with ``X-Content-Type-Options: nosniff``. The audit pack
(``exports.receipts.pack``) needs ``exports.export_audit_pack`` and a job the user may see.
"""

from __future__ import annotations

import tempfile

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import BooleanField, Value
from django.http import FileResponse, Http404
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from exports.admin.mixins import ReadOnlyMixin, admin_views
from exports.admin.scoping import CompanyScopedAdminMixin
from exports.models import Receipt
from exports.receipts.files import (
    receipt_download_name,
    receipt_open,
    receipt_served_type,
)
from exports.receipts.pack import audit_pack_name, audit_pack_write
from exports.selectors.receipts import (
    distinct_files,
    may_download_receipts,
    receipt_for_download,
    receipts_of_entry,
)

EXPORT_AUDIT_PACK = "exports.export_audit_pack"
# Set on the rows of a page's queryset: whether the asking user may download (display methods
# get the row, not the request).
MAY_DOWNLOAD = "may_download_receipts"


def with_download_flag(queryset, request):
    flag = may_download_receipts(user=request.user)
    return queryset.annotate(**{MAY_DOWNLOAD: Value(flag, output_field=BooleanField())})


def _attachment(response):
    """A download the browser neither sniffs nor runs (``FileResponse`` sets the attachment)."""
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox"
    return response


def download_link(receipt):
    url = reverse("admin:exports_receipt_download", args=[receipt.pk])
    return format_html('<a href="{}" class="receipt-download">Download</a>', url)


def receipts_html(receipts, *, may_download: bool):
    """Each receipt: type, size, SHA-256 and (with the permission) a download link."""
    receipts = list(receipts)
    if not receipts:
        return "-"
    return format_html(
        '<ul class="receipts">{}</ul>',
        format_html_join(
            "",
            '<li>{} · {} · SHA-256 <code style="word-break:break-all">{}</code> {}</li>',
            (
                (
                    receipt.content_type,
                    f"{filesizeformat(receipt.size)} ({receipt.size} bytes)",
                    receipt.sha256,
                    download_link(receipt) if may_download else "",
                )
                for receipt in receipts
            ),
        ),
    )


class ItemReceiptsInlineMixin:
    """For the job's items inline: ``receipts_shown``."""

    def get_queryset(self, request):
        queryset = super().get_queryset(request).prefetch_related("receipts")
        return with_download_flag(queryset, request)

    @admin.display(description="Receipts")
    def receipts_shown(self, obj):
        return receipts_html(
            distinct_files(obj.receipts.all()),
            may_download=getattr(obj, MAY_DOWNLOAD, False),
        )


class EntryReceiptsAdminMixin:
    """For the journal entry's page: ``receipts_shown``."""

    def get_queryset(self, request):
        return with_download_flag(super().get_queryset(request), request)

    @admin.display(description="Receipts")
    def receipts_shown(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        return receipts_html(receipts_of_entry(obj), may_download=getattr(obj, MAY_DOWNLOAD, False))


class AuditPackAdminMixin:
    """For ``ExportJobAdmin``: the audit pack's URL and its button on the job's page."""

    def get_urls(self):
        own = admin_views(
            self,
            ("<path:object_id>/audit-pack/", self.audit_pack_view, "exports_exportjob_audit_pack"),
        )
        return own + super().get_urls()

    def has_export_audit_pack_permission(self, request) -> bool:
        return self.has_view_permission(request) and request.user.has_perm(EXPORT_AUDIT_PACK)

    def render_change_form(self, request, context, *args, **kwargs):
        context["can_export_audit_pack"] = self.has_export_audit_pack_permission(request)
        return super().render_change_form(request, context, *args, **kwargs)

    def audit_pack_view(self, request, object_id):
        if not self.has_export_audit_pack_permission(request):
            raise PermissionDenied
        job = self.get_object(request, unquote(object_id))  # the user's companies only
        if job is None:
            raise Http404("No such export job.")
        out = tempfile.TemporaryFile()
        audit_pack_write(job=job, out=out)
        out.seek(0)
        response = FileResponse(
            out, as_attachment=True, filename=audit_pack_name(job), content_type="application/zip"
        )
        return _attachment(response)


@admin.register(Receipt)
class ReceiptAdmin(CompanyScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    """The archive's index, read-only; files leave only through ``download_view``."""

    list_display = (
        "short_sha256",
        "company",
        "job_link",
        "accounting_entry_id",
        "content_type",
        "size_shown",
        "fetched_at",
        "file_link",
    )
    list_filter = ("company", "content_type")
    search_fields = ("sha256", "accounting_entry_id", "export_job__pleo_job_id")
    list_select_related = ("company", "export_job")
    readonly_fields = ("file_link",)

    def get_queryset(self, request):
        return with_download_flag(super().get_queryset(request), request)

    def get_urls(self):
        own = admin_views(
            self, ("<path:object_id>/download/", self.download_view, "exports_receipt_download")
        )
        return own + super().get_urls()

    def download_view(self, request, object_id):
        if not may_download_receipts(user=request.user):
            raise PermissionDenied
        receipt = receipt_for_download(user=request.user, receipt_id=unquote(object_id))
        if receipt is None:
            raise Http404("No such receipt.")
        handle = receipt_open(receipt)
        if handle is None:
            raise Http404("The file is not in the archive.")
        response = FileResponse(
            handle,
            as_attachment=True,
            filename=receipt_download_name(receipt),
            content_type=receipt_served_type(receipt),
        )
        return _attachment(response)

    @admin.display(description="SHA-256", ordering="sha256")
    def short_sha256(self, obj):
        return format_html('<code title="{}">{}…</code>', obj.sha256, obj.sha256[:16])

    @admin.display(description="Job")
    def job_link(self, obj):
        url = reverse("admin:exports_exportjob_change", args=[obj.export_job_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.export_job.pleo_job_id)[:8])

    @admin.display(description="Size", ordering="size")
    def size_shown(self, obj):
        return filesizeformat(obj.size)

    @admin.display(description="File")
    def file_link(self, obj):
        return download_link(obj) if getattr(obj, MAY_DOWNLOAD, False) else "-"
