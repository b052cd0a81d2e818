"""The built-in journal adapter's book: entries and their lines."""

from __future__ import annotations

from django.db import models

from exports.choices import JournalLineKind
from exports.models.companies import Company
from exports.models.fields import optional_foreign_key
from exports.models.jobs import ExportJob
from exports.money import format_money


class JournalEntry(models.Model):
    """One export item booked in the built-in double-entry journal (``exports.adapters.journal``).

    Amounts are in the wallet currency, in minor units. ``amount`` is Pleo's
    ``amount.inWalletCurrency`` with its sign (negative for refunds and chargebacks); the lines
    carry positive debits and credits that balance exactly.
    """

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="journal_entries")
    export_job = optional_foreign_key(
        ExportJob, on_delete=models.PROTECT, related_name="journal_entries"
    )
    accounting_entry_id = models.UUIDField("accounting entry id", db_index=True)
    idempotency_key = models.CharField(max_length=64, unique=True, editable=False)
    date = models.DateField("booking date")
    currency = models.CharField(max_length=3)
    amount = models.BigIntegerField(help_text="Pleo's total in the wallet currency, minor units.")
    supplier_currency = models.CharField(max_length=3, blank=True)
    supplier_amount = models.BigIntegerField(null=True, blank=True)
    description = models.CharField(max_length=300, blank=True)
    pleo_type = models.CharField("Pleo expense type", max_length=50, blank=True)
    reconciliation_id = models.CharField(max_length=100, blank=True)
    vendor_code = models.CharField(max_length=100, blank=True)
    vendor_name = models.CharField(max_length=200, blank=True)
    pleo_links = models.JSONField("Pleo links", default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "journal entries"
        indexes = [models.Index(fields=["company", "accounting_entry_id"])]

    def __str__(self):
        return self.number

    @property
    def number(self) -> str:
        return f"JE-{self.pk:06d}" if self.pk else "JE-(unsaved)"

    @staticmethod
    def pk_from_number(number: str) -> int | None:
        if not number or not number.startswith("JE-") or not number[3:].isdigit():
            return None
        return int(number[3:])


class JournalLine(models.Model):
    """One side of a journal entry: a debit or a credit on one account, in minor units."""

    Kind = JournalLineKind

    entry = models.ForeignKey(JournalEntry, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    account_code = models.CharField(max_length=100)
    account_name = models.CharField(max_length=200, blank=True)
    debit = models.BigIntegerField(default=0)
    credit = models.BigIntegerField(default=0)
    description = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["entry", "position"]
        constraints = [
            models.UniqueConstraint(fields=["entry", "position"], name="unique_line_position"),
            models.CheckConstraint(
                condition=models.Q(debit__gte=0, credit__gte=0), name="journal_line_not_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(debit=0) | models.Q(credit=0), name="journal_line_one_side"
            ),
        ]

    def __str__(self):
        """``4060 debit 1952.27 DKK``: in major units, like every amount people read."""
        side, value = ("debit", self.debit) if self.debit else ("credit", self.credit)
        return f"{self.account_code} {side} {format_money(value, self.entry.currency)}"
