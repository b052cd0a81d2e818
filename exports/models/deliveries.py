"""Received webhook deliveries and worker heartbeats."""

from __future__ import annotations

from django.db import models

from exports.choices import DeliveryState
from exports.models.companies import Company
from exports.models.credentials import WebhookEndpoint
from exports.models.fields import optional_foreign_key


class WebhookDelivery(models.Model):
    """Every verified webhook delivery, stored before anything else happens."""

    State = DeliveryState

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries"
    )
    webhook_id = models.CharField(max_length=200)
    webhook_timestamp = models.DateTimeField()
    event_type = models.CharField(max_length=100, blank=True)
    body = models.TextField()
    received_at = models.DateTimeField(db_index=True)
    company = optional_foreign_key(Company, on_delete=models.SET_NULL, related_name="deliveries")
    pleo_job_id = models.UUIDField(null=True, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.RECEIVED)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        # The worker settles a company's deliveries still enqueued after each check
        # (exports.services.delivery_states): found by this index, not a scan.
        indexes = [models.Index(fields=["company", "state"], name="delivery_company_state")]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "webhook_id"], name="unique_webhook_id_per_endpoint"
            )
        ]

    def __str__(self):
        return f"{self.event_type or 'delivery'} {self.webhook_id}"


class WorkerHeartbeat(models.Model):
    """A live worker (or the poll tick) says it is alive; the health check reads these rows."""

    name = models.CharField(max_length=200, unique=True)
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    TICK = "poll-tick"

    def __str__(self):
        return f"{self.name} (last seen {self.last_seen_at:%Y-%m-%d %H:%M:%S})"
