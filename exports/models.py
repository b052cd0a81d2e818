"""The data model of pleo-export-bridge.

Companies, their Pleo credentials (secrets encrypted at rest), webhook endpoints, our mirror of
Pleo's export jobs, the append-only audit table, received webhook deliveries and worker heartbeats.
Business logic lives in ``exports.services``; models hold data, constraints and tiny helpers.
"""

from __future__ import annotations

import json
import uuid

from django.conf import settings
from django.db import models

from exports.money import format_money
from exports.notifications.recipients import validate_email_list
from exports.secret_fields import EncryptedSecret, secret_column  # noqa: F401 (re-exported)


class Trigger(models.TextChoices):
    WEBHOOK = "webhook", "Webhook"
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "Manual (admin)"
    RECOVERY = "recovery", "Recovery"
    COMMAND_LINE = "command_line", "Command line"


class Credential(models.Model):
    """A Pleo credential: an API key or an OAuth 2.0 client, for one company or an organisation."""

    class Kind(models.TextChoices):
        API_KEY = "api_key", "API key"
        OAUTH = "oauth", "OAuth 2.0"

    class Status(models.TextChoices):
        OK = "ok", "OK"
        NEEDS_REAUTHORISATION = "needs_reauthorisation", "Needs re-authorisation"
        INVALID = "invalid", "Invalid"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.API_KEY)
    api_key_ciphertext = secret_column()
    oauth_client_id = models.CharField("OAuth client id", max_length=200, blank=True)
    oauth_client_secret_ciphertext = secret_column()
    access_token_ciphertext = secret_column()
    access_token_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_token_ciphertext = secret_column()
    refreshing_until = models.DateTimeField(null=True, blank=True, editable=False)
    api_base_url = models.URLField(
        "API base URL override",
        blank=True,
        help_text="Blank: the PLEO_API_BASE_URL setting.",
    )
    oauth_base_url = models.URLField(
        "OAuth base URL override",
        blank=True,
        help_text="Blank: the PLEO_OAUTH_BASE_URL setting.",
    )
    status = models.CharField(max_length=30, choices=Status.choices, default=Status.OK)
    last_error = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    # The last "Test connection" (or the check made on save): when, and what Pleo answered.
    connection_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    connection_check_result = models.CharField(max_length=500, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    api_key = EncryptedSecret("API key")
    oauth_client_secret = EncryptedSecret("OAuth client secret")
    access_token = EncryptedSecret("OAuth access token")
    refresh_token = EncryptedSecret("OAuth refresh token")

    SECRET_FIELDS = ("api_key", "oauth_client_secret", "access_token", "refresh_token")

    class Meta:
        ordering = ["name"]
        permissions = [("manage_webhooks", "Can subscribe and unsubscribe webhooks (calls Pleo)")]

    def __str__(self):
        return f"{self.name} ({self.get_kind_display()})"

    def __repr__(self):
        return f"<Credential {self.pk} {self.name!r} {self.kind} {self.status}>"

    @property
    def is_usable(self) -> bool:
        return self.status == self.Status.OK


class WebhookEndpoint(models.Model):
    """Where Pleo delivers a credential's webhooks: ``/webhooks/pleo/<uuid>/``.

    Signing secrets are a list (two may be active during a rotation), encrypted as one JSON value:
    ``[{"secret": "whsec_…", "added_at": iso, "retire_after": iso|None, "subscription_id": str}]``.
    """

    credential = models.OneToOneField(
        Credential, on_delete=models.CASCADE, related_name="webhook_endpoint"
    )
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    signing_secrets_ciphertext = secret_column()
    pleo_subscription_id = models.CharField(max_length=100, blank=True)
    subscription_status = models.CharField(max_length=30, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    signing_secrets = EncryptedSecret("Signing secrets")  # JSON text, see the class docstring

    def __str__(self):
        return f"Webhook endpoint {self.uuid}"

    @property
    def path(self) -> str:
        return f"/webhooks/pleo/{self.uuid}/"

    def secret_entries(self) -> list[dict]:
        raw = self.signing_secrets
        return json.loads(raw) if raw else []

    def set_secret_entries(self, entries: list[dict]) -> None:
        self.signing_secrets = json.dumps(entries) if entries else ""


class Company(models.Model):
    """A Pleo company whose export jobs we process, with its per-company lease."""

    name = models.CharField(max_length=200)
    pleo_company_id = models.UUIDField("Pleo company id", unique=True)
    active = models.BooleanField(default=True)
    credential = models.ForeignKey(Credential, on_delete=models.PROTECT, related_name="companies")
    accounting_adapter = models.CharField(max_length=50, default="journal")
    notify_emails = models.CharField(
        "notification emails",
        max_length=1000,
        blank=True,
        validators=[validate_email_list],
        help_text="Comma-separated addresses of this company's bookkeepers: they are told when "
        "a job of this company fails or needs someone. The integrator's addresses are the "
        "NOTIFY_EMAILS setting.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    last_check_at = models.DateTimeField(null=True, blank=True)
    last_check_outcome = models.CharField(max_length=30, blank=True)
    last_check_error = models.TextField(blank=True)

    # The lease: one run per company across processes and machines (exports.services.leases).
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    lease_holder = models.CharField(max_length=200, blank=True, editable=False)
    recheck_requested = models.BooleanField(default=False, editable=False)
    recheck_trigger = models.CharField(
        max_length=20, choices=Trigger.choices, blank=True, editable=False
    )
    # A run that must go on (unfinished work) is picked up by the sweep when its lease lapses.
    work_pending = models.BooleanField(default=False, editable=False)
    # At most one queued check per company, whatever triggered it (exports.services.dispatch).
    check_queued_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When the last check a worker picked up for this company had been queued. The largest over
    # all companies is how far the queue has got: a marker much older than that was lost.
    check_picked_queued_at = models.DateTimeField(
        null=True, blank=True, editable=False, db_index=True
    )
    next_run_not_before = models.DateTimeField(null=True, blank=True, editable=False)
    # Held: Pleo reports a job of ours with a status we do not know (it might still be running),
    # so nothing else is started for the company until Pleo shows a status we know or an operator
    # releases it (exports.services.unknown_status).
    unknown_status_job_id = models.UUIDField(
        "held by job (status unknown)", null=True, blank=True, editable=False
    )
    unknown_status = models.CharField(
        "unknown job status", max_length=100, blank=True, editable=False
    )
    unknown_status_since = models.DateTimeField(null=True, blank=True, editable=False)
    # Repeated failures (exports.services.failing): set by every run that failed or left work
    # unfinished, cleared by one that did not. Never edited by hand.
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    attempts = models.PositiveIntegerField("failed attempts", default=0, editable=False)
    next_retry_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "companies"
        permissions = [
            ("check_now", "Can trigger an export check (calls Pleo)"),
            ("view_all_companies", "Sees every company (not only those of a company membership)"),
            (
                "release_unknown_status",
                "Can release a company held by a job in a status we do not know",
            ),
        ]

    def __str__(self):
        return self.name


class CompanyMembership(models.Model):
    """Which companies a staff user, or every member of a group, may see (issue 15 §6).

    A staff user who is not a superuser and lacks ``exports.view_all_companies`` sees only the
    companies of their own membership and of their groups' (none without one), and only the rows
    tied to those companies (``exports.selectors.company_access``). Edited by superusers.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="company_membership",
    )
    group = models.OneToOneField(
        "auth.Group",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="company_membership",
    )
    companies = models.ManyToManyField(Company, blank=True, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, group__isnull=True)
                | models.Q(user__isnull=True, group__isnull=False),
                name="company_membership_user_or_group",
            )
        ]

    def __str__(self):
        if self.user_id:
            return f"Companies of user {self.user}"
        return f"Companies of group {self.group}"


class ExportJob(models.Model):
    """Our mirror of a Pleo export job plus our own facts about it (claim, expiry, processing)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        IN_PROGRESS = "in_progress"
        FAILED = "failed"
        COMPLETED = "completed"
        COMPLETED_WITH_ERRORS = "completed_with_errors"
        # Pleo sent a status we do not know; its raw value is in last_payload["status"].
        UNKNOWN = "unknown", "Unknown (see the last payload)"

    class Claim(models.TextChoices):
        NONE = "", "Not claimed"
        STARTING = "starting", "Starting (started sent, outcome not yet known)"
        OURS = "ours", "Ours (Pleo accepted started)"
        ELSEWHERE = "elsewhere", "Owned elsewhere"
        ADOPTED = "adopted", "Adopted by an operator"
        LOST = "lost", "Not ours (another worker won)"

    pleo_job_id = models.UUIDField("Pleo job id", unique=True)
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="export_jobs")
    status = models.CharField(max_length=30, choices=Status.choices)
    created_at = models.DateTimeField("created at (Pleo)")
    started_at = models.DateTimeField(null=True, blank=True)
    last_updated_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    expires_in = models.IntegerField(
        help_text="Seconds, counted from lastUpdatedAt (or createdAt)."
    )
    number_of_items = models.IntegerField(default=0)
    is_interactive = models.BooleanField(default=True)
    vendor_based_bookkeeping = models.BooleanField(default=False)
    created_by = models.UUIDField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    failure_reason_type = models.CharField(max_length=60, blank=True)
    last_payload = models.JSONField(default=dict, blank=True)
    # When the stored payload was received (the first read that changed it: a read that finds it
    # unchanged writes nothing).
    payload_received_at = models.DateTimeField(null=True, blank=True)

    first_seen_at = models.DateTimeField(auto_now_add=True)
    seen_via = models.CharField(max_length=20, choices=Trigger.choices)
    updated_at = models.DateTimeField(auto_now=True)

    claim = models.CharField(max_length=20, choices=Claim.choices, default=Claim.NONE, blank=True)
    claim_run_id = models.UUIDField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Locally detected expiry, kept apart from Pleo's status.
    expired_detected_at = models.DateTimeField(null=True, blank=True)
    processing_state = models.CharField(max_length=30, blank=True)
    # Repeated failures of runs on this job (exports.services.failing), as on the company.
    failing_since = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField("failed attempts", default=0)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["company", "status"])]
        permissions = [
            ("adopt_exportjob", "Can adopt an in-progress job as ours"),
            ("export_audit_pack", "Can download a job's audit pack"),
        ]

    def __str__(self):
        return f"Job {self.pleo_job_id} ({self.status})"

    @property
    def is_ours(self) -> bool:
        return self.claim in (self.Claim.OURS, self.Claim.STARTING, self.Claim.ADOPTED)


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("Audit entries are append-only: they cannot be updated.")

    def delete(self):
        raise PermissionError(
            "Audit entries are append-only: only the retention command prunes them."
        )

    def prune_older_than(self, cutoff) -> int:
        """The one way audit rows leave: a bulk delete of rows older than ``cutoff``."""
        deleted, _ = models.QuerySet.delete(self.filter(created_at__lt=cutoff))
        return deleted


class AuditEntry(models.Model):
    """One step of one run, for one company (and job). Append-only, enforced here."""

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    created_at = models.DateTimeField(db_index=True)
    company = models.ForeignKey(
        Company, on_delete=models.PROTECT, null=True, blank=True, related_name="audit_entries"
    )
    export_job = models.ForeignKey(
        ExportJob, on_delete=models.PROTECT, null=True, blank=True, related_name="audit_entries"
    )
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    step = models.CharField(max_length=40, db_index=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.OK)
    http_method = models.CharField(max_length=10, blank=True)
    http_path = models.CharField(max_length=300, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    run_id = models.UUIDField(null=True, blank=True, db_index=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.step} {self.outcome}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("Audit entries are append-only: they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit entries are append-only: only the retention command prunes.")


class WebhookDelivery(models.Model):
    """Every verified webhook delivery, stored before anything else happens."""

    class State(models.TextChoices):
        RECEIVED = "received", "Received"
        ENQUEUED = "enqueued", "Enqueued"
        IGNORED = "ignored", "Ignored"
        ENQUEUE_FAILED = "enqueue_failed", "Enqueue failed"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries"
    )
    webhook_id = models.CharField(max_length=200)
    webhook_timestamp = models.DateTimeField()
    event_type = models.CharField(max_length=100, blank=True)
    body = models.TextField()
    received_at = models.DateTimeField(db_index=True)
    company = models.ForeignKey(
        Company, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )
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


# --- Export lifecycle and journal ---


class ExportItemRecord(models.Model):
    """Our record of one item of one export job, so the adapter books it at most once.

    The record is committed in state ``booking`` before the adapter is called. A run that finds a
    record still ``booking`` (the previous run died between the adapter call and recording its
    answer) asks the adapter's ``lookup`` instead of booking again. ``booked``/``failed`` mean the
    outcome is decided but Pleo has not confirmed it yet; ``reported`` means Pleo's answer showed
    the item final (``result`` says which way).
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        BOOKING = "booking", "Booking (adapter called, answer not recorded yet)"
        BOOKED = "booked", "Booked (to report)"
        FAILED = "failed", "Failed (to report)"
        REPORTED = "reported", "Reported to Pleo"

    class Result(models.TextChoices):
        NONE = "", "Not decided"
        SUCCESSFUL = "successful", "Successful"
        FAILED = "failed", "Failed"

    export_job = models.ForeignKey(ExportJob, on_delete=models.PROTECT, related_name="item_records")
    accounting_entry_id = models.UUIDField("accounting entry id")
    idempotency_key = models.CharField(max_length=64, unique=True, editable=False)
    adapter = models.CharField(max_length=50, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    result = models.CharField(max_length=20, choices=Result.choices, blank=True, default="")
    external_id = models.CharField(max_length=200, blank=True)
    external_url = models.CharField(max_length=500, blank=True)
    exported_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    failure_reason_type = models.CharField(max_length=60, blank=True)
    booking_started_at = models.DateTimeField(null=True, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)
    # The item as Pleo sent it when it was booked, redacted (exports.adapters.item_snapshot).
    item_snapshot = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["export_job", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["export_job", "accounting_entry_id"], name="unique_item_record_per_job"
            )
        ]

    def __str__(self):
        return f"Item {self.accounting_entry_id} ({self.state})"


class JournalEntry(models.Model):
    """One export item booked in the built-in double-entry journal (``exports.adapters.journal``).

    Amounts are in the wallet currency, in minor units. ``amount`` is Pleo's
    ``amount.inWalletCurrency`` with its sign (negative for refunds and chargebacks); the lines
    carry positive debits and credits that balance exactly.
    """

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="journal_entries")
    export_job = models.ForeignKey(
        ExportJob,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="journal_entries",
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

    class Kind(models.TextChoices):
        EXPENSE = "expense", "Expense"
        TAX = "tax", "Tax"
        CONTRA = "contra", "Contra account"

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


# --- Scale ---


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


# --- Notifications (exports.notifications) ---

# Defined in their own package, registered with the app here.
from exports.notifications.models import Notification, NotificationThrottle  # noqa: E402,F401

# The receipt archive's index (exports.receipts).
from exports.receipts.models import Receipt  # noqa: E402,F401

# Rejected webhook requests, counted (exports.rejections).
from exports.rejections.models import WebhookRejectionCount  # noqa: E402,F401

# A company's Xero connection, synced Xero data and code mapping (exports.xero.models).
from exports.xero.models import (  # noqa: E402,F401
    XeroAccount,
    XeroBooking,
    XeroConnection,
    XeroContact,
    XeroMapping,
    XeroTaxRate,
    XeroTrackingOption,
)
