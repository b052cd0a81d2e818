"""The receipt archive's index: one row per file of one export item of one job.

Imported by ``exports.models`` (app label ``exports``). The file itself lives in the named storage
``STORAGES["receipts"]`` under a content address, ``<company pk>/<sha256>``: a file exported
twice (in two jobs, or twice in one) is stored once and referred to by several rows. Never stored
here: the signed URL Pleo gave (its query string is a credential); only its host and path are kept.
"""

from __future__ import annotations

from django.db import models


class Receipt(models.Model):
    item_record = models.ForeignKey(
        "exports.ExportItemRecord", on_delete=models.PROTECT, related_name="receipts"
    )
    company = models.ForeignKey("exports.Company", on_delete=models.PROTECT, related_name="+")
    export_job = models.ForeignKey("exports.ExportJob", on_delete=models.PROTECT, related_name="+")
    accounting_entry_id = models.UUIDField("accounting entry id", db_index=True)
    # The file's place in the item's files[] as Pleo sent them (0-based).
    position = models.PositiveSmallIntegerField(default=0)
    declared_type = models.CharField("type Pleo declared", max_length=100, blank=True)
    declared_size = models.BigIntegerField("size Pleo declared", null=True, blank=True)
    content_type = models.CharField("type judged by content", max_length=100)
    size = models.BigIntegerField("size in bytes")
    sha256 = models.CharField("SHA-256", max_length=64, db_index=True)
    storage_name = models.CharField(max_length=200)
    source_host = models.CharField(max_length=255)
    source_path = models.CharField(max_length=1000, blank=True)
    fetched_at = models.DateTimeField()

    class Meta:
        ordering = ["item_record", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["item_record", "position"], name="unique_receipt_per_item_file"
            )
        ]
        permissions = [("download_receipt", "Can download archived receipts")]

    def __str__(self):
        return f"Receipt {self.sha256[:12]} ({self.content_type}, {self.size} bytes)"
