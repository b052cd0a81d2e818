"""The webhook side of the admin: a delivery's page links its job, "Reprocess" says
what it did and did not do, and rejected requests are counted on the credential page and the
index (counts and the last time, never what the requests held).

Mixed into the credential's admin (``exports.admin.credentials``), with the deliveries' own
admin here; reads for the pages are in
``exports.rejections.selectors``.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from exports.admin.mixins import ViewOnlyMixin
from exports.admin.scoping import CompanyScopedAdminMixin
from exports.models import ExportJob, WebhookDelivery
from exports.rejections.selectors import rejection_counts_for_credential
from exports.timestamps import timestamp_text


class DeliveryAdminMixin:
    """For ``WebhookDeliveryAdmin``: the job link and an honest "Reprocess"."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields] + ["job_link"]

    @admin.display(description="Job")
    def job_link(self, obj):
        """The job the delivery announced, once a check has seen it. Looked up within the
        delivery's own company: a delivery on the page is one of the user's companies'."""
        if obj is None or obj.pleo_job_id is None:
            return "No job named by this delivery."
        job = (
            ExportJob.objects.filter(pleo_job_id=obj.pleo_job_id, company_id=obj.company_id)
            .only("pk", "pleo_job_id", "status")
            .first()
            if obj.company_id is not None
            else None
        )
        if job is None:
            return f"{obj.pleo_job_id} (not seen by a check yet)"
        url = reverse("admin:exports_exportjob_change", args=[job.pk])
        return format_html('<a href="{}">{}</a> ({})', url, job.pleo_job_id, job.status)

    @admin.action(
        description="Reprocess (enqueue the company's check again)", permissions=["check_now"]
    )
    def reprocess(self, request, queryset):
        from exports.services.webhooks import WebhookReprocessError, webhook_delivery_reprocess

        done, refused = [], []
        for delivery in queryset:
            try:
                done.append(webhook_delivery_reprocess(delivery=delivery))
            except WebhookReprocessError as exc:
                refused.append(str(exc))
        if done:
            self.message_user(
                request,
                f"{len(done)} {'delivery' if len(done) == 1 else 'deliveries'} reprocessed: "
                + " ".join(done),
                messages.SUCCESS,
            )
        if refused:
            head = "Nothing reprocessed. " if not done else ""
            self.message_user(request, head + " ".join(refused), messages.WARNING)

    def has_check_now_permission(self, request):
        return request.user.has_perm("exports.check_now")


def rejection_lines_html(counts) -> str:
    """``<ul>`` of ``401 signature not verified: 12, last … (3 min ago)`` lines, or "None"."""
    if not counts:
        return format_html("{}", "None counted.")
    return format_html(
        "<ul class='rejections'>{}</ul>",
        format_html_join(
            "",
            "<li>{}: {} (first {}, last {})</li>",
            (
                (
                    row.get_status_display(),
                    row.count,
                    timestamp_text(row.first_at),
                    timestamp_text(row.last_at),
                )
                for row in counts
            ),
        ),
    )


class CredentialRejectionsMixin:
    """For ``CredentialAdmin``: the read-only field ``rejected_requests``."""

    @admin.display(description="Rejected webhook requests")
    def rejected_requests(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        return rejection_lines_html(rejection_counts_for_credential(credential=obj))


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(
    DeliveryAdminMixin, CompanyScopedAdminMixin, ViewOnlyMixin, admin.ModelAdmin
):
    # Reprocess, the job link and the read-only fields: DeliveryAdminMixin above.
    list_display = ("received_at", "endpoint", "event_type", "webhook_id", "company", "state")
    list_filter = ("state", "event_type", "company")
    search_fields = ("webhook_id",)
    date_hierarchy = "received_at"
    actions = ["reprocess"]
