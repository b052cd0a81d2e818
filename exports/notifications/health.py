"""``notify_health``'s check: a dead worker cannot report its own death.

Run from cron or a systemd timer every minute, outside the worker: it reads the worker heartbeat
and the last poll tick (:mod:`exports.health`) and, when either is missing, records a
``service_unhealthy`` notification and sends it at once from this process (not through the
queue the dead worker would have to serve). The dedupe window applies: one message an hour
while it lasts, not sixty. A message of an earlier run that failed is tried again here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from exports import clock
from exports.health import check_tick, check_worker
from exports.notifications.kinds import Kind
from exports.notifications.models import Notification, NotificationThrottle
from exports.notifications.service import notification_deliver, notification_record

HEALTHY, UNHEALTHY, NOT_NOTIFIED = 0, 1, 2


@dataclass
class HealthReport:
    code: int
    lines: list[str] = field(default_factory=list)
    notification: Notification | None = None


def service_health_notify() -> HealthReport:
    """Check the worker and the poll tick; notify directly when one is missing.

    Exit codes: 0 healthy; 1 unhealthy and the people are told (now, or by a message within the
    window); 2 unhealthy and nobody could be told (no recipient configured, or sending failed).
    """
    checks = {"worker": check_worker(), "poll tick": check_tick()}
    report = HealthReport(code=HEALTHY)
    report.lines = [
        f"{name}: {'ok' if r.ok else 'MISSING'} ({r.detail})" for name, r in checks.items()
    ]
    _retry_due_directly()
    failing = {name: result.detail for name, result in checks.items() if not result.ok}
    if not failing:
        return report
    with transaction.atomic():
        notification = notification_record(
            kind=Kind.SERVICE_UNHEALTHY, facts={"failing": failing}, enqueue=False
        )
    if notification is None:
        last = (
            NotificationThrottle.objects.filter(key=f"{Kind.SERVICE_UNHEALTHY}:service")
            .values_list("last_sent_at", flat=True)
            .first()
        )
        earlier = (
            Notification.objects.filter(kind=Kind.SERVICE_UNHEALTHY)
            .exclude(status=Notification.Status.SUPPRESSED)
            .order_by("-created_at", "-id")
            .first()
        )
        report.notification = earlier
        if earlier is not None and earlier.status == Notification.Status.SENT:
            report.code = UNHEALTHY
            report.lines.append(f"unhealthy: already notified (message {earlier.pk} at {last})")
        else:
            report.code = NOT_NOTIFIED
            status = earlier.get_status_display() if earlier else "none"
            report.lines.append(f"unhealthy: the message within the window was not sent ({status})")
        return report
    report.notification = notification
    if notification.status == Notification.Status.NO_CHANNEL:
        report.code = NOT_NOTIFIED
        report.lines.append("unhealthy: nobody to notify (set NOTIFY_EMAILS or NOTIFY_WEBHOOK_URL)")
        return report
    status = notification_deliver(notification_id=notification.pk)
    notification.refresh_from_db()
    if status == Notification.Status.SENT:
        report.code = UNHEALTHY
        report.lines.append(f"unhealthy: notified (message {notification.pk})")
    else:
        report.code = NOT_NOTIFIED
        report.lines.append(
            f"unhealthy: message {notification.pk} not sent ({notification.error}); "
            f"the next run tries again"
        )
    return report


def _retry_due_directly() -> None:
    """Earlier health messages that failed: the worker may be the one that is down."""
    due = Notification.objects.filter(
        kind=Kind.SERVICE_UNHEALTHY,
        status=Notification.Status.RETRYING,
        next_attempt_at__lte=clock.now(),
    ).values_list("pk", flat=True)
    for pk in list(due):
        notification_deliver(notification_id=pk)
