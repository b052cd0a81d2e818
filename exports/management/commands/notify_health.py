"""``notify_health``: tell someone when the worker or the poll tick is missing.

Run it every minute from cron or a systemd timer (not from the worker: a dead worker cannot
report its own death). It sends directly, not through the queue, and at most once per
``NOTIFY_WINDOW_SECONDS`` while the problem lasts. Exit codes: 0 healthy; 1 unhealthy and
notified (now or within the window; nothing on stderr, so cron mails nothing); 2 unhealthy and
nobody could be told (the reason on stderr, which cron mails to MAILTO).
"""

from django.core.management.base import BaseCommand, CommandError

from exports.notifications.health import HEALTHY, NOT_NOTIFIED, service_health_notify


class Command(BaseCommand):
    help = (
        "Check the worker heartbeat and the last poll tick; when either is missing, email "
        "NOTIFY_EMAILS and post to NOTIFY_WEBHOOK_URL directly (one message per hour while it "
        "lasts). Run every minute from cron or a systemd timer. Exit 0 healthy, 1 unhealthy "
        "and notified, 2 unhealthy and nobody could be notified."
    )

    def handle(self, *args, **options):
        report = service_health_notify()
        for line in report.lines:
            self.stdout.write(line)
        if report.code == NOT_NOTIFIED:
            # On stderr: cron mails it (MAILTO), the last channel left when ours failed.
            raise CommandError(report.lines[-1], returncode=report.code)
        if report.code != HEALTHY:
            # Told (now or within the window): only the exit code, no stderr for cron to mail
            # every minute.
            raise SystemExit(report.code)
