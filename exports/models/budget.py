"""The shared Pleo request budget, when it lives in the database."""

from __future__ import annotations

from django.db import models


class RequestBudget(models.Model):
    """The shared Pleo request budget of one key (a credential, an OAuth client, or global).

    Used by ``exports.services.budget`` when the budget lives in the database (no Redis). ``tat``
    is the GCRA "theoretical arrival time" (epoch seconds): a request may go when
    ``tat <= now + tolerance``, and each one pushes ``tat`` one emission interval further. ``used``
    and ``refused`` count this key's requests in the epoch minute ``minute`` (for the admin).
    """

    key = models.CharField(max_length=200, unique=True)
    tat = models.FloatField(default=0.0)
    minute = models.BigIntegerField(default=0)
    used = models.IntegerField(default=0)
    refused = models.IntegerField(default=0)

    class Meta:
        ordering = ["key"]

    def __str__(self):
        return self.key
