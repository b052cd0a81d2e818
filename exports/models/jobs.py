"""Our mirror of Pleo's export jobs and our record of each of their items."""

from __future__ import annotations

from django.db import models

from exports.choices import (
    BookedSummarySource,
    ExportJobClaim,
    ExportJobStatus,
    ItemRecordResult,
    ItemRecordState,
    Trigger,
)
from exports.models.companies import Company


class ExportJob(models.Model):
    """Our mirror of a Pleo export job plus our own facts about it (claim, expiry, processing)."""

    Status = ExportJobStatus
    Claim = ExportJobClaim

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


class ExportItemRecord(models.Model):
    """Our record of one item of one export job, so the adapter books it at most once.

    The record is committed in state ``booking`` before the adapter is called. A run that finds a
    record still ``booking`` (the previous run died between the adapter call and recording its
    answer) asks the adapter's ``lookup`` instead of booking again. ``booked``/``failed`` mean the
    outcome is decided but Pleo has not confirmed it yet; ``reported`` means Pleo's answer showed
    the item final (``result`` says which way).
    """

    State = ItemRecordState
    Result = ItemRecordResult
    SummarySource = BookedSummarySource

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
    # What we booked (the adapter's booking_summary), for the reconciliation report.
    booked_amount = models.BigIntegerField(null=True, blank=True, editable=False)
    booked_currency = models.CharField(max_length=3, blank=True, editable=False)
    booked_accounts = models.CharField(max_length=500, blank=True, editable=False)
    # What that summary was computed from (blank: booked before this was kept; the
    # reconciliation then asks the adapter what its summaries were).
    booked_summary_source = models.CharField(
        max_length=20,
        choices=BookedSummarySource.choices,
        blank=True,
        default=BookedSummarySource.NOT_RECORDED,
        editable=False,
    )
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
