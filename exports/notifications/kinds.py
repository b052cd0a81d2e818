"""What a notification can be about."""

from __future__ import annotations

from exports.choices import NotificationKind

Kind = NotificationKind

# Conditions rather than events: they are observed again on every poll (or every minute, for
# notify_health) while they last. Within the window a repeated observation records nothing (no
# digest of "still blocked" rows); the next message after the window says it still holds.
CONDITIONS = frozenset({Kind.BLOCKED_ELSEWHERE, Kind.SERVICE_UNHEALTHY})
