"""The notification log (one row per message or suppressed notice) and the dedupe throttle.

Imported by ``exports.models`` (app label ``exports``). No secret is ever stored here: the
webhook URL is a secret (its path authorises posting), so only its host is kept.
"""

from __future__ import annotations

from django.db import models

from exports.choices import NotificationStatus
from exports.models.fields import optional_foreign_key
from exports.notifications.kinds import Kind


def _about(to: str) -> models.ForeignKey:
    """What a notification is about: optional, and the notification stays when that row goes."""
    return optional_foreign_key(to, on_delete=models.SET_NULL, related_name="notifications")


class Notification(models.Model):
    Status = NotificationStatus

    kind = models.CharField(max_length=30, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    # What "one message per hour" counts per: "company:<pk>", "credential:<pk>" or "service".
    dedupe_key = models.CharField(max_length=100)
    company = _about("exports.Company")
    credential = _about("exports.Credential")
    export_job = _about("exports.ExportJob")
    pleo_job_id = models.UUIDField("Pleo job id", null=True, blank=True)
    subject = models.CharField(max_length=300)
    summary = models.CharField(max_length=500, blank=True, help_text="One line, for digests.")
    text = models.TextField()
    link = models.CharField(max_length=500, blank=True)
    recipients = models.JSONField(default=list, blank=True, help_text="Email addresses.")
    webhook_host = models.CharField(
        max_length=200, blank=True, help_text="The webhook's host only: its URL is a secret."
    )
    delivered_to = models.JSONField(
        default=list, blank=True, help_text="Channels done: 'email:<address>', 'webhook'."
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    digested_in = optional_foreign_key(
        "self",
        on_delete=models.SET_NULL,
        related_name="digest",
        help_text="The message that included this suppressed notice in its digest.",
    )
    created_at = models.DateTimeField(db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "exports"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["kind", "dedupe_key", "status"]),
            models.Index(fields=["status", "next_attempt_at"]),
        ]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.subject}"


class NotificationThrottle(models.Model):
    """When the last message of one kind and dedupe key went out (a compare-and-set row)."""

    key = models.CharField(max_length=150, unique=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "exports"

    def __str__(self):
        return self.key
