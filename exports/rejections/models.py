"""Rejected webhook requests, counted: how many and when last, never what they held.

One row per endpoint and status for 401 (the signature did not verify) and 413 (the body was too
large), and one global row per status for 404 (no such endpoint, or one a 413 named that does not
exist). Written by ``exports.rejections.counter`` at most once a minute per process, never per
request.
"""

from __future__ import annotations

from django.db import models

from exports.choices import RejectionStatus
from exports.models.fields import optional_foreign_key


class WebhookRejectionCount(models.Model):
    Status = RejectionStatus

    endpoint = optional_foreign_key(
        "exports.WebhookEndpoint", on_delete=models.CASCADE, related_name="rejection_counts"
    )
    status = models.PositiveSmallIntegerField(choices=Status.choices)
    # "<endpoint pk>:<status>", or "global:<status>": unique where a nullable pair would not be.
    key = models.CharField(max_length=60, unique=True, editable=False)
    count = models.BigIntegerField(default=0)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()

    class Meta:
        app_label = "exports"
        ordering = ["status", "endpoint_id"]

    def __str__(self):
        where = f"endpoint {self.endpoint_id}" if self.endpoint_id else "any endpoint"
        return f"{self.count} × {self.status} on {where}"

    @staticmethod
    def key_for(endpoint_pk: int | None, status: int) -> str:
        return f"{endpoint_pk if endpoint_pk is not None else 'global'}:{status}"
