"""``notify_health``: tell someone when the worker or the poll tick is missing.

Run it every minute from cron or a systemd timer (not from the worker: a dead worker cannot
report its own death). It sends directly, not through the queue, and at most once per
``NOTIFY_WINDOW_SECONDS`` while the problem lasts. Exit codes: 0 healthy; 1 unhealthy and
notified (now or within the window); 2 unhealthy and nobody could be told.
"""

from django.core.management.base import BaseCommand, CommandError

from exports.notifications.health import HEALTHY, service_health_notify


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
        if report.code != HEALTHY:
            raise CommandError(report.lines[-1], returncode=report.code)
