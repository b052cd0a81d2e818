"""The retention command: the one way audit entries (and old webhook deliveries, notification log
rows and archived receipts) leave.

Receipts leave only with ``--receipts-older-than DAYS``; the audit entries of a job whose
receipts are kept stay with them (``exports.receipts.retention``)."""

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from exports import clock
from exports.models import AuditEntry, Notification, WebhookDelivery
from exports.receipts.retention import audit_kept_for_receipts, receipts_prune

MIN_WEBHOOK_DAYS = 7  # webhook ids must outlive the sender's retries (1 to 3 days)


class Command(BaseCommand):
    help = (
        "Delete audit entries and webhook deliveries older than the retention period (the "
        "notification log goes with the audit entries)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days",
            type=int,
            default=settings.AUDIT_RETENTION_DAYS,
            help="Keep audit entries this many days (default AUDIT_RETENTION_DAYS, 90).",
        )
        parser.add_argument(
            "--webhook-days",
            type=int,
            default=settings.WEBHOOK_RETENTION_DAYS,
            help=f"Keep webhook deliveries this many days (at least {MIN_WEBHOOK_DAYS}).",
        )
        parser.add_argument(
            "--receipts-older-than",
            type=int,
            default=None,
            metavar="DAYS",
            help="Also delete archived receipts fetched more than DAYS ago (default: keep every "
            "receipt). The audit entries of a job whose receipts are kept are kept.",
        )

    def handle(self, *args, **options):
        if options["days"] < 1:
            raise CommandError("--days must be at least 1.", returncode=2)
        if options["webhook_days"] < MIN_WEBHOOK_DAYS:
            raise CommandError(
                f"--webhook-days must be at least {MIN_WEBHOOK_DAYS}: a delivery's id must "
                f"outlive the sender's retries, or a retried delivery would be processed again.",
                returncode=2,
            )
        receipt_days = options["receipts_older_than"]
        if receipt_days is not None and receipt_days < 1:
            raise CommandError("--receipts-older-than must be at least 1.", returncode=2)
        now = clock.now()
        if receipt_days is not None:
            pruned = receipts_prune(fetched_before=now - timedelta(days=receipt_days))
            self.stdout.write(
                f"Pruned {pruned.rows} receipts fetched more than {receipt_days} days ago and "
                f"{pruned.files} stored files no receipt refers to any more."
            )
        audit = AuditEntry.objects.exclude(audit_kept_for_receipts()).prune_older_than(
            now - timedelta(days=options["days"])
        )
        deliveries, _ = WebhookDelivery.objects.filter(
            received_at__lt=now - timedelta(days=options["webhook_days"])
        ).delete()
        notifications, _ = Notification.objects.filter(
            created_at__lt=now - timedelta(days=options["days"])
        ).delete()
        self.stdout.write(
            f"Pruned {audit} audit entries older than {options['days']} days and {deliveries} "
            f"webhook deliveries older than {options['webhook_days']} days."
        )
        if notifications:
            self.stdout.write(f"Pruned {notifications} notification log rows with them.")
