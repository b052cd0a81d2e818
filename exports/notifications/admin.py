"""The notification log in the admin: read-only (rows are written by the service)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from exports.admin.mixins import ReadOnlyMixin
from exports.admin.scoping import CompanyScopedAdminMixin
from exports.notifications.models import Notification
from exports.timestamps import timestamp_text


@admin.register(Notification)
class NotificationAdmin(CompanyScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "kind",
        "company",
        "status",
        "subject",
        "channels",
        "attempts",
        "sent_at",
    )
    # No company filter: a sidebar of every company does not scale (search by its name instead).
    list_filter = ("kind", "status")
    search_fields = ("subject", "company__name", "pleo_job_id")
    list_select_related = ("company",)
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "kind",
        "status",
        "company",
        "credential",
        "export_job",
        "pleo_job_id",
        "subject",
        "text",
        "link_shown",
        "recipients",
        "webhook_host",
        "delivered_to",
        "attempts",
        "error",
        "next_attempt_at",
        "sent_at",
        "digested_in",
        "digest_of",
    )
    readonly_fields = fields

    @admin.display(description="Channels")
    def channels(self, obj):
        parts = []
        if obj.recipients:
            n = len(obj.recipients)
            parts.append(f"{n} email{'s' if n != 1 else ''}")
        if obj.webhook_host:
            parts.append(f"webhook ({obj.webhook_host})")
        return ", ".join(parts) or "-"

    @admin.display(description="Link")
    def link_shown(self, obj):
        return format_html('<a href="{}">{}</a>', obj.link, obj.link) if obj.link else "-"

    @admin.display(description="Digest of (suppressed notices this message included)")
    def digest_of(self, obj):
        rows = list(obj.digest.order_by("created_at", "id")[:50])
        if not rows:
            return "-"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                '<li><a href="{}">{}</a> {}</li>',
                (
                    (
                        reverse("admin:exports_notification_change", args=[row.pk]),
                        timestamp_text(row.created_at),
                        row.summary,
                    )
                    for row in rows
                ),
            ),
        )
