"""Every value the database stores in a choices column, in one place.

The stored vocabulary of the product, read top to bottom: what triggered a check, the states a job
mirror, an item record, a webhook delivery, a credential, a notification and a Xero connection move
through, and the steps an audit row may name. As dj-stripe keeps its ``enums.py``: one module to
read when a newcomer asks "what can this column hold?".

Rules:
- A value is stored and filtered on, and operators script against it: it never changes. Add a
  member; never rename one. Labels are what the admin shows and may be reworded (Django puts the
  labels in migrations, so a reworded label is a migration of choices only).
- Models alias the enum they store (``ExportJob.Status is ExportJobStatus``): both spellings name
  one enum, never two.
- What only code sees is a ``StrEnum`` beside its code (``exports/services/runs.py`` ``Outcome``);
  what Pleo sends is in ``exports/pleo/enums.py`` (the wire's words, tolerant of new values).

Imports nothing of the project.
"""

from __future__ import annotations

from django.db import models

# --- Companies and their checks (exports.models.companies, jobs) ----------------------------------


class Trigger(models.TextChoices):
    """What started a check of a company (and so how a job was first seen)."""

    WEBHOOK = "webhook", "Webhook"
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "Manual (admin)"
    RECOVERY = "recovery", "Recovery"
    COMMAND_LINE = "command_line", "Command line"


class ExportJobStatus(models.TextChoices):
    """Pleo's status of a job as we last read it (``ExportJob.Status``)."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    FAILED = "failed"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    # Pleo sent a status we do not know; its raw value is in last_payload["status"].
    UNKNOWN = "unknown", "Unknown (see the last payload)"


class ExportJobClaim(models.TextChoices):
    """Whose job it is, as far as we know (``ExportJob.Claim``)."""

    NONE = "", "Not claimed"
    STARTING = "starting", "Starting (started sent, outcome not yet known)"
    OURS = "ours", "Ours (Pleo accepted started)"
    ELSEWHERE = "elsewhere", "Owned elsewhere"
    ADOPTED = "adopted", "Adopted by an operator"
    LOST = "lost", "Not ours (another worker won)"


class ItemRecordState(models.TextChoices):
    """Where our record of one item stands (``ExportItemRecord.State``)."""

    PENDING = "pending", "Pending"
    BOOKING = "booking", "Booking (adapter called, answer not recorded yet)"
    BOOKED = "booked", "Booked (to report)"
    FAILED = "failed", "Failed (to report)"
    REPORTED = "reported", "Reported to Pleo"


class ItemRecordResult(models.TextChoices):
    """Which way an item went (``ExportItemRecord.Result``)."""

    NONE = "", "Not decided"
    SUCCESSFUL = "successful", "Successful"
    FAILED = "failed", "Failed"


class BookedSummarySource(models.TextChoices):
    """What the summary kept on an item's record when it was booked was computed from
    (``ExportItemRecord.booked_summary_source``; the adapter's ``summary_source``), so the
    reconciliation compares it only with a ledger that speaks the same terms. Blank: booked before
    the source was kept (the adapter's ``unrecorded_summary_source`` says what it was then)."""

    NOT_RECORDED = "", "Not recorded (booked before the source was kept)"
    PLEO_ITEM = "pleo_item", "Pleo's item (its wallet total and account codes)"
    BOOKED_DOCUMENT = "booked_document", "The document as the adapter wrote it (the ledger's terms)"


# --- Credentials and webhooks (exports.models.credentials, deliveries; exports.rejections) ------


class CredentialKind(models.TextChoices):
    API_KEY = "api_key", "API key"
    OAUTH = "oauth", "OAuth 2.0"


class CredentialStatus(models.TextChoices):
    OK = "ok", "OK"
    NEEDS_REAUTHORISATION = "needs_reauthorisation", "Needs re-authorisation"
    INVALID = "invalid", "Invalid"


class DeliveryState(models.TextChoices):
    """A stored webhook delivery's way through the queue (``WebhookDelivery.State``)."""

    RECEIVED = "received", "Received"
    ENQUEUED = "enqueued", "Enqueued"
    IGNORED = "ignored", "Ignored"
    ENQUEUE_FAILED = "enqueue_failed", "Enqueue failed"
    PROCESSED = "processed", "Processed"
    FAILED = "failed", "Failed"


class RejectionStatus(models.IntegerChoices):
    """The HTTP status a rejected webhook request was answered with."""

    UNAUTHORIZED = 401, "401 signature not verified"
    NOT_FOUND = 404, "404 unknown endpoint"
    TOO_LARGE = 413, "413 body too large"


# --- The audit table (exports.models.audit) -------------------------------------------------------


class AuditStep(models.TextChoices):
    """Every step an audit entry can name, in the order a run meets them. The values are what
    operators, the README and tests read and filter by: they never change, and the admin shows
    them as they are (each label is its value)."""

    # Picking a job (exports.services.job_start, start_flow, claims_recovery)
    DEFERRED = "deferred", "deferred"
    SELECTED = "selected", "selected"
    OWNED_ELSEWHERE = "owned_elsewhere", "owned_elsewhere"
    FINISHED_ELSEWHERE = "finished_elsewhere", "finished_elsewhere"
    NOT_FOUND = "not_found", "not_found"
    EXPIRED = "expired", "expired"
    STARTED = "started", "started"
    START_CONFLICT = "start_conflict", "start_conflict"
    START_UNKNOWN = "start_unknown", "start_unknown"
    ADOPTED = "adopted", "adopted"
    # Carrying it (exports.services.lifecycle*)
    VALIDATED = "validated", "validated"
    VALIDATION_FAILED = "validation_failed", "validation_failed"
    ITEMS_READ = "items_read", "items_read"
    EXPORT_ITEMS_READ = "export_items_read", "export_items_read"
    EXPORT_ITEMS_REFUSED = "export_items_refused", "export_items_refused"
    JOB_REFUSED = "job_refused", "job_refused"
    REPORT_EARLY = "report_early", "report_early"
    AT_RISK = "at_risk", "at_risk"
    DEADLINE_CHECKED = "deadline_checked", "deadline_checked"
    DEADLINE_NOT_REFRESHED = "deadline_not_refreshed", "deadline_not_refreshed"
    DEADLINE_GUARD = "deadline_guard", "deadline_guard"
    CALLS_ESTIMATED = "calls_estimated", "calls_estimated"
    ITEM_RECOVERED = "item_recovered", "item_recovered"
    ITEM_FAILED = "item_failed", "item_failed"
    # An item found booked earlier (a re-export), or booked on a moved date (Xero's lock date)
    ITEM_BOOKED_NOTE = "item_booked_note", "item_booked_note"
    # Receipts (exports.services.lifecycle_receipts)
    RECEIPT_NOTE = "receipt_note", "receipt_note"
    RECEIPTS_ARCHIVED_ONLY = "receipts_archived_only", "receipts_archived_only"
    BATCH_TOO_LARGE = "batch_too_large", "batch_too_large"
    REPORT_UNKNOWN = "report_unknown", "report_unknown"
    ITEMS_REPORTED = "items_reported", "items_reported"
    ITEM_REPORT_REJECTED = "item_report_rejected", "item_report_rejected"
    REPORT_RECONCILED = "report_reconciled", "report_reconciled"
    PAUSED = "paused", "paused"
    # Its end (exports.services.lifecycle_final)
    COMPLETED = "completed", "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors", "completed_with_errors"
    JOB_FAILED = "job_failed", "job_failed"
    FINISH_UNKNOWN = "finish_unknown", "finish_unknown"
    FINISH_REFUSED = "finish_refused", "finish_refused"
    JOB_ENDED = "job_ended", "job_ended"
    # Items booked by hand, or booked before this job booked them (exports.services.settlement)
    ITEM_ALREADY_BOOKED = "item_already_booked", "item_already_booked"
    ITEM_BOOKED_BY_HAND = "item_booked_by_hand", "item_booked_by_hand"
    MANUAL_BOOKING_FORGOTTEN = "manual_booking_forgotten", "manual_booking_forgotten"
    # Unknown statuses (exports.services.unknown_status)
    UNKNOWN_STATUS = "unknown_status", "unknown_status"
    UNKNOWN_STATUS_CLEARED = "unknown_status_cleared", "unknown_status_cleared"
    RELEASED = "released", "released"
    # Xero (exports.services.xero_connections, xero_sync): connecting, each call, each sync
    XERO_CONNECTION = "xero_connection", "xero_connection"
    XERO_CALL = "xero_call", "xero_call"
    XERO_SYNC = "xero_sync", "xero_sync"
    # Any step that failed unexpectedly
    ERROR = "error", "error"


class AuditOutcome(models.TextChoices):
    """How a step went (``AuditEntry.Outcome``)."""

    OK = "ok", "OK"
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"


# --- The journal and notifications (exports.models.journal, exports.notifications) -------------


class JournalLineKind(models.TextChoices):
    EXPENSE = "expense", "Expense"
    TAX = "tax", "Tax"
    CONTRA = "contra", "Contra account"


class NotificationKind(models.TextChoices):
    """What a notification is about (``exports.notifications.kinds.Kind``)."""

    JOB_FAILED = "job_failed", "Job failed or expired"
    ITEMS_FAILED = "items_failed", "Items failed in a job"
    REAUTHORISATION = "reauthorisation", "Credential needs re-authorisation"
    JOB_AT_RISK = "job_at_risk", "Job at risk of expiry"
    BLOCKED_ELSEWHERE = "blocked_elsewhere", "Company blocked by a job owned elsewhere"
    SERVICE_UNHEALTHY = "service_unhealthy", "Worker or poll tick missing"
    RECONCILIATION_FLAGGED = "reconciliation_flagged", "Reconciliation found differences"
    # A company's Xero connection (one per company): told per company, apart from a Pleo
    # credential's re-authorisation (which is per credential, for all the companies using it).
    XERO_REAUTHORISATION = "xero_reauthorisation", "Xero connection needs re-authorisation"


class NotificationStatus(models.TextChoices):
    QUEUED = "queued", "Queued for the worker"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    RETRYING = "retrying", "Failed, will retry"
    FAILED = "failed", "Failed (gave up)"
    SUPPRESSED = "suppressed", "Suppressed (in the next digest)"
    NO_CHANNEL = "no_channel", "Not sent: no recipient configured"


# --- Xero (exports.xero.models) -------------------------------------------------------------------


class BookingMethod(models.TextChoices):
    JOURNAL = "journal", "Manual journal"
    ACCOUNTS_PAYABLE = "accounts_payable", "Bill (accounts payable) against the supplier"


class DocumentStatus(models.TextChoices):
    DRAFT = "draft", "Drafts (approved in Xero by a person)"
    POSTED = "posted", "Posted (journals) / approved (bills)"


class LockDatePolicy(models.TextChoices):
    FAIL = "fail", "Fail the item, naming the lock date"
    NEXT_OPEN_DATE = "next_open_date", "Book on the first open date (original date in the text)"


class XeroConnectionStatus(models.TextChoices):
    OK = "ok", "Connected"
    NEEDS_REAUTHORISATION = "needs_reauthorisation", "Needs re-authorisation"


class PleoCodeKind(models.TextChoices):
    """What a Pleo code is, for the mapping."""

    ACCOUNT = "account", "Pleo account → Xero account code"
    TAX_CODE = "tax_code", "Pleo tax code → Xero tax type"
    TAG = "tag", "Pleo tag → Xero tracking option"
    CONTRA_ACCOUNT = "contra_account", "Contra (wallet) account → Xero account code"
    VENDOR = "vendor", "Pleo vendor → Xero contact"


class XeroDocumentKind(models.TextChoices):
    """The Xero document one item became (``XeroBooking.Kind``); values are Xero's endpoints."""

    MANUAL_JOURNAL = "ManualJournals", "Manual journal"
    BILL = "Invoices", "Bill (ACCPAY)"
    CREDIT_NOTE = "CreditNotes", "Credit note (ACCPAYCREDIT)"
