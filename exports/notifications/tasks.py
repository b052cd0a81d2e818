"""django-q2 entry points for notifications: thin, by id."""

from __future__ import annotations

from exports.notifications.service import notification_deliver


def send_notification(notification_id: int) -> str:
    return notification_deliver(notification_id=notification_id)
