"""A manual booking: the ledger reference an operator gave for an expense booked by hand.

Keyed by company and Pleo's ``accountingEntryId``: when Pleo exports the same expense again (a
new job, a new idempotency key), the lifecycle finds it before booking and reports the item
successful with this reference instead of booking it (``exports.services.settlement``). Created
from a failed ``ExportItemRecord``; deleted ("forgotten") by an operator. Both are audited with
who and when.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from exports.models.fields import optional_foreign_key

# ``ExportItemRecord.adapter`` of an item reported with a manual booking's reference.
BY_HAND = "by_hand"


class ManualBooking(models.Model):
    company = models.ForeignKey(
        "exports.Company", on_delete=models.PROTECT, related_name="manual_bookings"
    )
    accounting_entry_id = models.UUIDField("accounting entry id")
    reference = models.CharField(
        "ledger reference", max_length=200, help_text="Where the expense is booked (voucher no.)."
    )
    item_record = optional_foreign_key(
        "exports.ExportItemRecord",
        on_delete=models.SET_NULL,
        related_name="manual_bookings",
        help_text="The failed item the operator settled.",
    )
    booked_by = optional_foreign_key(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, related_name="+"
    )
    booked_by_name = models.CharField("booked by", max_length=150)
    booked_at = models.DateTimeField()

    class Meta:
        ordering = ["-booked_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "accounting_entry_id"], name="unique_manual_booking_per_entry"
            )
        ]
        permissions = [("settle_item", "Can mark failed items as booked by hand (and undo it)")]

    def __str__(self):
        return f"{self.reference} (booked by hand)"
