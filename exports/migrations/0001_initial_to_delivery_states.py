"""Migrations 0001–0010 as one: the schema they built, created in one step on a new database.

A database that has applied all of 0001–0010 (every checkout before this squash that ran
`migrate`) takes this as applied and goes on with 0011. A database stopped part-way through
0001–0010 cannot use it: check out a commit from before the squash (git log -- exports/migrations),
run `python manage.py migrate` there, then come back. The one data step of the old chain (0005:
staff who saw every company keep `view_all_companies`) had nothing to do on a new database and
is not repeated here.
"""

import django.db.models.deletion
import exports.notifications.recipients
import uuid
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    replaces = [
        ("exports", "0001_initial"),
        ("exports", "0002_export_lifecycle"),
        ("exports", "0003_request_budget"),
        ("exports", "0004_company_check_picked_queued_at"),
        ("exports", "0005_company_membership_and_view_all_companies"),
        ("exports", "0006_company_unknown_job_status"),
        ("exports", "0007_notifications"),
        ("exports", "0008_credential_oauth_base_url_and_connection_check"),
        ("exports", "0009_failing_state"),
        ("exports", "0010_delivery_states_rejections_payload_time"),
    ]

    initial = True

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Credential",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=200)),
                (
                    "kind",
                    models.CharField(
                        choices=[("api_key", "API key"), ("oauth", "OAuth 2.0")],
                        default="api_key",
                        max_length=20,
                    ),
                ),
                ("api_key_ciphertext", models.TextField(blank=True, default="", editable=False)),
                (
                    "oauth_client_id",
                    models.CharField(blank=True, max_length=200, verbose_name="OAuth client id"),
                ),
                (
                    "oauth_client_secret_ciphertext",
                    models.TextField(blank=True, default="", editable=False),
                ),
                (
                    "access_token_ciphertext",
                    models.TextField(blank=True, default="", editable=False),
                ),
                ("access_token_expires_at", models.DateTimeField(blank=True, null=True)),
                (
                    "refresh_token_ciphertext",
                    models.TextField(blank=True, default="", editable=False),
                ),
                ("refreshing_until", models.DateTimeField(blank=True, editable=False, null=True)),
                (
                    "api_base_url",
                    models.URLField(
                        blank=True,
                        help_text="Blank: the PLEO_API_BASE_URL setting.",
                        verbose_name="API base URL override",
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("ok", "OK"),
                            ("needs_reauthorisation", "Needs re-authorisation"),
                            ("invalid", "Invalid"),
                        ],
                        default="ok",
                        max_length=30,
                    ),
                ),
                ("last_error", models.TextField(blank=True)),
                ("status_changed_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "connection_check_result",
                    models.CharField(blank=True, editable=False, max_length=500),
                ),
                (
                    "connection_checked_at",
                    models.DateTimeField(blank=True, editable=False, null=True),
                ),
                (
                    "oauth_base_url",
                    models.URLField(
                        blank=True,
                        help_text="Blank: the PLEO_OAUTH_BASE_URL setting.",
                        verbose_name="OAuth base URL override",
                    ),
                ),
            ],
            options={
                "ordering": ["name"],
                "permissions": [
                    ("manage_webhooks", "Can subscribe and unsubscribe webhooks (calls Pleo)")
                ],
            },
        ),
        migrations.CreateModel(
            name="NotificationThrottle",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key", models.CharField(max_length=150, unique=True)),
                ("last_sent_at", models.DateTimeField(blank=True, null=True)),
            ],
        ),
        migrations.CreateModel(
            name="RequestBudget",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key", models.CharField(max_length=200, unique=True)),
                ("tat", models.FloatField(default=0.0)),
                ("minute", models.BigIntegerField(default=0)),
                ("used", models.IntegerField(default=0)),
                ("refused", models.IntegerField(default=0)),
            ],
            options={
                "ordering": ["key"],
            },
        ),
        migrations.CreateModel(
            name="WorkerHeartbeat",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=200, unique=True)),
                ("started_at", models.DateTimeField()),
                ("last_seen_at", models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name="Company",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=200)),
                ("pleo_company_id", models.UUIDField(unique=True, verbose_name="Pleo company id")),
                ("active", models.BooleanField(default=True)),
                ("accounting_adapter", models.CharField(default="journal", max_length=50)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("last_check_at", models.DateTimeField(blank=True, null=True)),
                ("last_check_outcome", models.CharField(blank=True, max_length=30)),
                ("last_check_error", models.TextField(blank=True)),
                ("lease_token", models.UUIDField(blank=True, editable=False, null=True)),
                ("lease_expires_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("lease_holder", models.CharField(blank=True, editable=False, max_length=200)),
                ("recheck_requested", models.BooleanField(default=False, editable=False)),
                (
                    "recheck_trigger",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("webhook", "Webhook"),
                            ("schedule", "Schedule"),
                            ("manual", "Manual (admin)"),
                            ("recovery", "Recovery"),
                            ("command_line", "Command line"),
                        ],
                        editable=False,
                        max_length=20,
                    ),
                ),
                ("work_pending", models.BooleanField(default=False, editable=False)),
                ("check_queued_at", models.DateTimeField(blank=True, editable=False, null=True)),
                (
                    "next_run_not_before",
                    models.DateTimeField(blank=True, editable=False, null=True),
                ),
                (
                    "check_picked_queued_at",
                    models.DateTimeField(blank=True, db_index=True, editable=False, null=True),
                ),
                (
                    "unknown_status",
                    models.CharField(
                        blank=True,
                        editable=False,
                        max_length=100,
                        verbose_name="unknown job status",
                    ),
                ),
                (
                    "unknown_status_job_id",
                    models.UUIDField(
                        blank=True,
                        editable=False,
                        null=True,
                        verbose_name="held by job (status unknown)",
                    ),
                ),
                (
                    "unknown_status_since",
                    models.DateTimeField(blank=True, editable=False, null=True),
                ),
                (
                    "notify_emails",
                    models.CharField(
                        blank=True,
                        help_text="Comma-separated addresses of this company's bookkeepers: they are told when a job of this company fails or needs someone. The integrator's addresses are the NOTIFY_EMAILS setting.",
                        max_length=1000,
                        validators=[exports.notifications.recipients.validate_email_list],
                        verbose_name="notification emails",
                    ),
                ),
                (
                    "attempts",
                    models.PositiveIntegerField(
                        default=0, editable=False, verbose_name="failed attempts"
                    ),
                ),
                ("failing_since", models.DateTimeField(blank=True, editable=False, null=True)),
                ("last_error", models.TextField(blank=True, editable=False)),
                ("next_retry_at", models.DateTimeField(blank=True, editable=False, null=True)),
                (
                    "credential",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="companies",
                        to="exports.credential",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "companies",
                "ordering": ["name"],
                "permissions": [
                    ("check_now", "Can trigger an export check (calls Pleo)"),
                    (
                        "view_all_companies",
                        "Sees every company (not only those of a company membership)",
                    ),
                    (
                        "release_unknown_status",
                        "Can release a company held by a job in a status we do not know",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="ExportJob",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("pleo_job_id", models.UUIDField(unique=True, verbose_name="Pleo job id")),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("in_progress", "In Progress"),
                            ("failed", "Failed"),
                            ("completed", "Completed"),
                            ("completed_with_errors", "Completed With Errors"),
                            ("unknown", "Unknown (see the last payload)"),
                        ],
                        max_length=30,
                    ),
                ),
                ("created_at", models.DateTimeField(verbose_name="created at (Pleo)")),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("last_updated_at", models.DateTimeField(blank=True, null=True)),
                ("completed_at", models.DateTimeField(blank=True, null=True)),
                ("expired_at", models.DateTimeField(blank=True, null=True)),
                (
                    "expires_in",
                    models.IntegerField(
                        help_text="Seconds, counted from lastUpdatedAt (or createdAt)."
                    ),
                ),
                ("number_of_items", models.IntegerField(default=0)),
                ("is_interactive", models.BooleanField(default=True)),
                ("vendor_based_bookkeeping", models.BooleanField(default=False)),
                ("created_by", models.UUIDField(blank=True, null=True)),
                ("failure_reason", models.TextField(blank=True)),
                ("failure_reason_type", models.CharField(blank=True, max_length=60)),
                ("last_payload", models.JSONField(blank=True, default=dict)),
                ("first_seen_at", models.DateTimeField(auto_now_add=True)),
                (
                    "seen_via",
                    models.CharField(
                        choices=[
                            ("webhook", "Webhook"),
                            ("schedule", "Schedule"),
                            ("manual", "Manual (admin)"),
                            ("recovery", "Recovery"),
                            ("command_line", "Command line"),
                        ],
                        max_length=20,
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "claim",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("", "Not claimed"),
                            ("starting", "Starting (started sent, outcome not yet known)"),
                            ("ours", "Ours (Pleo accepted started)"),
                            ("elsewhere", "Owned elsewhere"),
                            ("adopted", "Adopted by an operator"),
                            ("lost", "Not ours (another worker won)"),
                        ],
                        default="",
                        max_length=20,
                    ),
                ),
                ("claim_run_id", models.UUIDField(blank=True, null=True)),
                ("claimed_at", models.DateTimeField(blank=True, null=True)),
                ("expired_detected_at", models.DateTimeField(blank=True, null=True)),
                ("processing_state", models.CharField(blank=True, max_length=30)),
                (
                    "attempts",
                    models.PositiveIntegerField(default=0, verbose_name="failed attempts"),
                ),
                ("failing_since", models.DateTimeField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True)),
                ("next_retry_at", models.DateTimeField(blank=True, null=True)),
                ("payload_received_at", models.DateTimeField(blank=True, null=True)),
                (
                    "company",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="export_jobs",
                        to="exports.company",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
                "permissions": [("adopt_exportjob", "Can adopt an in-progress job as ours")],
            },
        ),
        migrations.CreateModel(
            name="ExportItemRecord",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("accounting_entry_id", models.UUIDField(verbose_name="accounting entry id")),
                ("idempotency_key", models.CharField(editable=False, max_length=64, unique=True)),
                ("adapter", models.CharField(blank=True, max_length=50)),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("booking", "Booking (adapter called, answer not recorded yet)"),
                            ("booked", "Booked (to report)"),
                            ("failed", "Failed (to report)"),
                            ("reported", "Reported to Pleo"),
                        ],
                        default="pending",
                        max_length=20,
                    ),
                ),
                (
                    "result",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("", "Not decided"),
                            ("successful", "Successful"),
                            ("failed", "Failed"),
                        ],
                        default="",
                        max_length=20,
                    ),
                ),
                ("external_id", models.CharField(blank=True, max_length=200)),
                ("external_url", models.CharField(blank=True, max_length=500)),
                ("exported_at", models.DateTimeField(blank=True, null=True)),
                ("failure_reason", models.TextField(blank=True)),
                ("failure_reason_type", models.CharField(blank=True, max_length=60)),
                ("booking_started_at", models.DateTimeField(blank=True, null=True)),
                ("reported_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "export_job",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="item_records",
                        to="exports.exportjob",
                    ),
                ),
            ],
            options={
                "ordering": ["export_job", "id"],
            },
        ),
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("created_at", models.DateTimeField(db_index=True)),
                (
                    "trigger",
                    models.CharField(
                        choices=[
                            ("webhook", "Webhook"),
                            ("schedule", "Schedule"),
                            ("manual", "Manual (admin)"),
                            ("recovery", "Recovery"),
                            ("command_line", "Command line"),
                        ],
                        max_length=20,
                    ),
                ),
                ("step", models.CharField(db_index=True, max_length=40)),
                (
                    "outcome",
                    models.CharField(
                        choices=[
                            ("ok", "OK"),
                            ("info", "Info"),
                            ("warning", "Warning"),
                            ("error", "Error"),
                        ],
                        default="ok",
                        max_length=10,
                    ),
                ),
                ("http_method", models.CharField(blank=True, max_length=10)),
                ("http_path", models.CharField(blank=True, max_length=300)),
                ("http_status", models.PositiveSmallIntegerField(blank=True, null=True)),
                ("message", models.TextField(blank=True)),
                ("worker", models.CharField(blank=True, max_length=200)),
                ("run_id", models.UUIDField(blank=True, db_index=True, null=True)),
                (
                    "company",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="audit_entries",
                        to="exports.company",
                    ),
                ),
                (
                    "export_job",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="audit_entries",
                        to="exports.exportjob",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "audit entries",
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="JournalEntry",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "accounting_entry_id",
                    models.UUIDField(db_index=True, verbose_name="accounting entry id"),
                ),
                ("idempotency_key", models.CharField(editable=False, max_length=64, unique=True)),
                ("date", models.DateField(verbose_name="booking date")),
                ("currency", models.CharField(max_length=3)),
                (
                    "amount",
                    models.BigIntegerField(
                        help_text="Pleo's total in the wallet currency, minor units."
                    ),
                ),
                ("supplier_currency", models.CharField(blank=True, max_length=3)),
                ("supplier_amount", models.BigIntegerField(blank=True, null=True)),
                ("description", models.CharField(blank=True, max_length=300)),
                (
                    "pleo_type",
                    models.CharField(blank=True, max_length=50, verbose_name="Pleo expense type"),
                ),
                ("reconciliation_id", models.CharField(blank=True, max_length=100)),
                ("vendor_code", models.CharField(blank=True, max_length=100)),
                ("vendor_name", models.CharField(blank=True, max_length=200)),
                (
                    "pleo_links",
                    models.JSONField(blank=True, default=dict, verbose_name="Pleo links"),
                ),
                ("created_at", models.DateTimeField()),
                (
                    "company",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="journal_entries",
                        to="exports.company",
                    ),
                ),
                (
                    "export_job",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="journal_entries",
                        to="exports.exportjob",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "journal entries",
                "ordering": ["-id"],
            },
        ),
        migrations.CreateModel(
            name="JournalLine",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("position", models.PositiveSmallIntegerField()),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("expense", "Expense"),
                            ("tax", "Tax"),
                            ("contra", "Contra account"),
                        ],
                        max_length=10,
                    ),
                ),
                ("account_code", models.CharField(max_length=100)),
                ("account_name", models.CharField(blank=True, max_length=200)),
                ("debit", models.BigIntegerField(default=0)),
                ("credit", models.BigIntegerField(default=0)),
                ("description", models.CharField(blank=True, max_length=300)),
                (
                    "entry",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="lines",
                        to="exports.journalentry",
                    ),
                ),
            ],
            options={
                "ordering": ["entry", "position"],
            },
        ),
        migrations.CreateModel(
            name="Notification",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("job_failed", "Job failed or expired"),
                            ("items_failed", "Items failed in a job"),
                            ("reauthorisation", "Credential needs re-authorisation"),
                            ("job_at_risk", "Job at risk of expiry"),
                            ("blocked_elsewhere", "Company blocked by a job owned elsewhere"),
                            ("service_unhealthy", "Worker or poll tick missing"),
                        ],
                        max_length=30,
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "Queued for the worker"),
                            ("sending", "Sending"),
                            ("sent", "Sent"),
                            ("retrying", "Failed, will retry"),
                            ("failed", "Failed (gave up)"),
                            ("suppressed", "Suppressed (in the next digest)"),
                            ("no_channel", "Not sent: no recipient configured"),
                        ],
                        default="queued",
                        max_length=20,
                    ),
                ),
                ("dedupe_key", models.CharField(max_length=100)),
                (
                    "pleo_job_id",
                    models.UUIDField(blank=True, null=True, verbose_name="Pleo job id"),
                ),
                ("subject", models.CharField(max_length=300)),
                (
                    "summary",
                    models.CharField(
                        blank=True, help_text="One line, for digests.", max_length=500
                    ),
                ),
                ("text", models.TextField()),
                ("link", models.CharField(blank=True, max_length=500)),
                (
                    "recipients",
                    models.JSONField(blank=True, default=list, help_text="Email addresses."),
                ),
                (
                    "webhook_host",
                    models.CharField(
                        blank=True,
                        help_text="The webhook's host only: its URL is a secret.",
                        max_length=200,
                    ),
                ),
                (
                    "delivered_to",
                    models.JSONField(
                        blank=True,
                        default=list,
                        help_text="Channels done: 'email:<address>', 'webhook'.",
                    ),
                ),
                ("attempts", models.PositiveSmallIntegerField(default=0)),
                ("error", models.TextField(blank=True)),
                ("next_attempt_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(db_index=True)),
                ("sent_at", models.DateTimeField(blank=True, null=True)),
                (
                    "company",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="notifications",
                        to="exports.company",
                    ),
                ),
                (
                    "credential",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="notifications",
                        to="exports.credential",
                    ),
                ),
                (
                    "digested_in",
                    models.ForeignKey(
                        blank=True,
                        help_text="The message that included this suppressed notice in its digest.",
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="digest",
                        to="exports.notification",
                    ),
                ),
                (
                    "export_job",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="notifications",
                        to="exports.exportjob",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="WebhookEndpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("uuid", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                (
                    "signing_secrets_ciphertext",
                    models.TextField(blank=True, default="", editable=False),
                ),
                ("pleo_subscription_id", models.CharField(blank=True, max_length=100)),
                ("subscription_status", models.CharField(blank=True, max_length=30)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "credential",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="webhook_endpoint",
                        to="exports.credential",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="WebhookDelivery",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("webhook_id", models.CharField(max_length=200)),
                ("webhook_timestamp", models.DateTimeField()),
                ("event_type", models.CharField(blank=True, max_length=100)),
                ("body", models.TextField()),
                ("received_at", models.DateTimeField(db_index=True)),
                ("pleo_job_id", models.UUIDField(blank=True, null=True)),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("received", "Received"),
                            ("enqueued", "Enqueued"),
                            ("ignored", "Ignored"),
                            ("enqueue_failed", "Enqueue failed"),
                            ("processed", "Processed"),
                            ("failed", "Failed"),
                        ],
                        default="received",
                        max_length=20,
                    ),
                ),
                ("error", models.TextField(blank=True)),
                (
                    "company",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="deliveries",
                        to="exports.company",
                    ),
                ),
                (
                    "endpoint",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="deliveries",
                        to="exports.webhookendpoint",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "webhook deliveries",
                "ordering": ["-received_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="WebhookRejectionCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "status",
                    models.PositiveSmallIntegerField(
                        choices=[
                            (401, "401 signature not verified"),
                            (404, "404 unknown endpoint"),
                            (413, "413 body too large"),
                        ]
                    ),
                ),
                ("key", models.CharField(editable=False, max_length=60, unique=True)),
                ("count", models.BigIntegerField(default=0)),
                ("first_at", models.DateTimeField()),
                ("last_at", models.DateTimeField()),
                (
                    "endpoint",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="rejection_counts",
                        to="exports.webhookendpoint",
                    ),
                ),
            ],
            options={
                "ordering": ["status", "endpoint_id"],
            },
        ),
        migrations.CreateModel(
            name="CompanyMembership",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "companies",
                    models.ManyToManyField(
                        blank=True, related_name="memberships", to="exports.company"
                    ),
                ),
                (
                    "group",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="company_membership",
                        to="auth.group",
                    ),
                ),
                (
                    "user",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="company_membership",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["id"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("group__isnull", True), ("user__isnull", False)),
                            models.Q(("group__isnull", False), ("user__isnull", True)),
                            _connector="OR",
                        ),
                        name="company_membership_user_or_group",
                    )
                ],
            },
        ),
        migrations.AddIndex(
            model_name="exportjob",
            index=models.Index(fields=["company", "status"], name="exports_exp_company_b11051_idx"),
        ),
        migrations.AddConstraint(
            model_name="exportitemrecord",
            constraint=models.UniqueConstraint(
                fields=("export_job", "accounting_entry_id"), name="unique_item_record_per_job"
            ),
        ),
        migrations.AddIndex(
            model_name="journalentry",
            index=models.Index(
                fields=["company", "accounting_entry_id"], name="exports_jou_company_5751eb_idx"
            ),
        ),
        migrations.AddConstraint(
            model_name="journalline",
            constraint=models.UniqueConstraint(
                fields=("entry", "position"), name="unique_line_position"
            ),
        ),
        migrations.AddConstraint(
            model_name="journalline",
            constraint=models.CheckConstraint(
                condition=models.Q(("credit__gte", 0), ("debit__gte", 0)),
                name="journal_line_not_negative",
            ),
        ),
        migrations.AddConstraint(
            model_name="journalline",
            constraint=models.CheckConstraint(
                condition=models.Q(("debit", 0), ("credit", 0), _connector="OR"),
                name="journal_line_one_side",
            ),
        ),
        migrations.AddIndex(
            model_name="notification",
            index=models.Index(
                fields=["kind", "dedupe_key", "status"], name="exports_not_kind_841f9d_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="notification",
            index=models.Index(
                fields=["status", "next_attempt_at"], name="exports_not_status_a921f3_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(fields=["company", "state"], name="delivery_company_state"),
        ),
        migrations.AddConstraint(
            model_name="webhookdelivery",
            constraint=models.UniqueConstraint(
                fields=("endpoint", "webhook_id"), name="unique_webhook_id_per_endpoint"
            ),
        ),
    ]
