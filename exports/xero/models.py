"""A company's Xero connection, what we synced from its Xero organisation, and its code mapping.

Registered with the ``exports`` app by the import at the end of ``exports/models.py``. The Xero
client (every other module of ``exports.xero``) never imports this module.

* :class:`XeroConnection`: one per company. The tenant (organisation) chosen at consent, both
  OAuth tokens encrypted (``EncryptedSecret``), their expiry and the refresh marker used by
  :mod:`exports.services.token_refresh`, the status ("needs re-authorisation" with its reason),
  the scopes Xero granted and the organisation's base currency.
* :class:`XeroAccount`, :class:`XeroTaxRate`, :class:`XeroTrackingOption`, :class:`XeroContact`:
  the organisation's chart of accounts, tax rates, tracking categories (one row per option) and
  contacts as the last sync saw them (``exports.services.xero_sync``).
* :class:`XeroMapping`: the company's mapping of a Pleo code to a Xero code, by kind.

The Pleo codes a company's items carry are read from the item snapshots we store
(``ExportItemRecord.item_snapshot``), not kept here (``exports.services.xero_mapping``).
"""

from __future__ import annotations

from django.db import models

from exports.choices import (
    BookingMethod,
    DocumentStatus,
    LockDatePolicy,
    PleoCodeKind,
    XeroConnectionStatus,
    XeroDocumentKind,
)
from exports.models.credentials import EncryptedSecret, OAuthTokenColumns


class XeroConnection(OAuthTokenColumns):
    Status = XeroConnectionStatus

    company = models.OneToOneField(
        "exports.Company", on_delete=models.CASCADE, related_name="xero_connection"
    )
    tenant_id = models.UUIDField("Xero tenant id", null=True, blank=True)
    tenant_name = models.CharField("Xero organisation", max_length=300, blank=True)
    connection_id = models.UUIDField("Xero connection id", null=True, blank=True)
    # The tenants /connections offered when there were several and none is chosen yet (status
    # OK without a tenant id: "choose the Xero organisation").
    tenant_choices = models.JSONField(default=list, blank=True, editable=False)
    status = models.CharField(max_length=30, choices=Status.choices, default=Status.OK)
    last_error = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    scopes_granted = models.TextField(blank=True)
    base_currency = models.CharField(max_length=3, blank=True)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_result = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # How items are booked (exports.services.xero_booking): the method for items whose Pleo
    # ``bookkeeping.method`` is none, whether documents are drafts or posted, and what a date on
    # or before the organisation's lock date does.
    default_method = models.CharField(
        "Default booking method",
        max_length=20,
        choices=BookingMethod.choices,
        default=BookingMethod.JOURNAL,
        help_text="For items whose Pleo bookkeeping method is 'none' (or not given).",
    )
    document_status = models.CharField(
        "Documents are booked as",
        max_length=10,
        choices=DocumentStatus.choices,
        default=DocumentStatus.DRAFT,
    )
    lock_date_policy = models.CharField(
        "Dates in a locked period",
        max_length=20,
        choices=LockDatePolicy.choices,
        default=LockDatePolicy.FAIL,
    )

    access_token = EncryptedSecret("Xero access token")
    refresh_token = EncryptedSecret("Xero refresh token")

    SECRET_FIELDS = ("access_token", "refresh_token")

    class Meta:
        ordering = ["company__name"]
        permissions = [("connect_xero", "Can connect a company to Xero and sync it (calls Xero)")]

    def __str__(self):
        return f"Xero: {self.tenant_name or 'no organisation'} ({self.company})"

    def __repr__(self):
        return f"<XeroConnection {self.pk} company={self.company_id} {self.status}>"

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scopes_granted.split())


def _synced_from(related_name: str) -> models.ForeignKey:
    """The connection a synced row was read through (the row goes with it)."""
    return models.ForeignKey(XeroConnection, on_delete=models.CASCADE, related_name=related_name)


def _one_per_connection(xero_key: str, name: str) -> models.UniqueConstraint:
    """Xero's identifier of a synced row is unique per connection (the sync upserts by it)."""
    return models.UniqueConstraint(fields=["connection", xero_key], name=name)


class _SyncedRow(models.Model):
    """A row as the last sync read it from Xero (``exports.services.xero_sync``)."""

    status: str

    class Meta:
        abstract = True

    @property
    def active(self) -> bool:
        return self.status == "ACTIVE"


class XeroAccount(_SyncedRow):
    connection = _synced_from("accounts")
    account_id = models.UUIDField()
    code = models.CharField(max_length=20, blank=True, db_index=True)
    name = models.CharField(max_length=300, blank=True)
    type = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=20, blank=True)
    tax_type = models.CharField(max_length=60, blank=True)

    class Meta:
        ordering = ["connection", "code"]
        constraints = [_one_per_connection("account_id", "unique_xero_account")]

    def __str__(self):
        return f"{self.code} {self.name}".strip()


class XeroTaxRate(_SyncedRow):
    connection = _synced_from("tax_rates")
    tax_type = models.CharField(max_length=60)
    name = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=20, blank=True)
    effective_rate = models.DecimalField(max_digits=9, decimal_places=4, null=True, blank=True)

    class Meta:
        ordering = ["connection", "tax_type"]
        constraints = [_one_per_connection("tax_type", "unique_xero_tax_rate")]

    def __str__(self):
        return f"{self.tax_type} ({self.name})"


class XeroTrackingOption(_SyncedRow):
    """One option of one tracking category (a category without options has no row)."""

    connection = _synced_from("tracking_options")
    category_id = models.UUIDField()
    category_name = models.CharField(max_length=100)
    category_status = models.CharField(max_length=20, blank=True)
    option_id = models.UUIDField()
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["connection", "category_name", "name"]
        constraints = [_one_per_connection("option_id", "unique_xero_tracking_option")]

    def __str__(self):
        return f"{self.category_name}: {self.name}"

    @property
    def active(self) -> bool:
        return self.status == "ACTIVE" and self.category_status == "ACTIVE"


class XeroContact(_SyncedRow):
    connection = _synced_from("contacts")
    contact_id = models.UUIDField()
    name = models.CharField(max_length=300)
    status = models.CharField(max_length=20, blank=True)
    account_number = models.CharField(max_length=100, blank=True, db_index=True)

    class Meta:
        ordering = ["connection", "name"]
        constraints = [_one_per_connection("contact_id", "unique_xero_contact")]

    def __str__(self):
        return self.name


class XeroMapping(models.Model):
    """One Pleo code of a company and the Xero code it is booked to.

    ``pleo_code``: an account's ``code`` (else its ``identifier``), a tax code's ``code``, a tag as
    ``groupCode/code``, a vendor's ``code``. ``xero_code``: an ``AccountCode``, a ``TaxType``, a
    tracking option as ``category/option`` (names, as Xero's line items carry them), a
    ``ContactID``. ``proposed``: filled in automatically where the codes matched; an edit in the
    admin makes it the operator's.
    """

    company = models.ForeignKey(
        "exports.Company", on_delete=models.CASCADE, related_name="xero_mappings"
    )
    kind = models.CharField(max_length=20, choices=PleoCodeKind.choices)
    pleo_code = models.CharField("Pleo code", max_length=200)
    xero_code = models.CharField("Xero code", max_length=200, blank=True)
    proposed = models.BooleanField(
        default=False, help_text="Proposed automatically (the codes matched); not yet edited."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["company", "kind", "pleo_code"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "kind", "pleo_code"], name="unique_xero_mapping"
            )
        ]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.pleo_code} → {self.xero_code or '(none)'}"


class XeroBooking(models.Model):
    """One item of ours sent to Xero as one document: written before the call (with the batch's
    idempotency key and the exact reference text sent), completed with Xero's id after it. What
    ``lookup`` reads first; the receipts attached so far (their SHA-256) let a re-export attach
    only what is missing."""

    Kind = XeroDocumentKind

    connection = models.ForeignKey(
        XeroConnection, on_delete=models.CASCADE, related_name="bookings"
    )
    tenant_id = models.UUIDField()
    idempotency_key = models.CharField(max_length=128, unique=True)
    accounting_entry_id = models.UUIDField(db_index=True)
    pleo_job_id = models.UUIDField(null=True, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    reference = models.CharField(max_length=500)
    batch_key = models.CharField(max_length=128, blank=True)
    document_id = models.UUIDField(null=True, blank=True, db_index=True)
    attached = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.get_kind_display()} {self.document_id or '(not confirmed)'}"
