"""Companies, the triggers of their checks, and which staff may see them."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from exports.choices import Trigger
from exports.models.credentials import Credential
from exports.notifications.recipients import validate_email_list


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


def _member(to: str) -> models.OneToOneField:
    """Whom a membership is for: a user or a group (one of the two, the check constraint says);
    it goes with them."""
    return models.OneToOneField(
        to, on_delete=models.CASCADE, null=True, blank=True, related_name="company_membership"
    )


class CompanyMembership(models.Model):
    """Which companies a staff user, or every member of a group, may see.

    A staff user who is not a superuser and lacks ``exports.view_all_companies`` sees only the
    companies of their own membership and of their groups' (none without one), and only the rows
    tied to those companies (``exports.selectors.company_access``). Edited by superusers.
    """

    user = _member(settings.AUTH_USER_MODEL)
    group = _member("auth.Group")
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
