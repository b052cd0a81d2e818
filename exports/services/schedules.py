"""All schedules in one place, created or updated by name; never duplicated."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django_q.models import Schedule

from exports import clock

POLL = "pleo-export-poll"
MAINTENANCE = "pleo-export-maintenance"


def wanted_schedules() -> dict[str, dict]:
    return {
        POLL: {
            "func": "exports.tasks.poll_tick",
            "schedule_type": Schedule.MINUTES,
            "minutes": settings.PLEO_POLL_INTERVAL_MINUTES,
        },
        MAINTENANCE: {
            "func": "exports.tasks.maintenance",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
        },
    }


@transaction.atomic
def ensure_schedules() -> list[str]:
    """Create or update our schedules by name; remove duplicates of a name. Returns the changes."""
    changes = []
    for name, fields in wanted_schedules().items():
        existing = list(Schedule.objects.select_for_update().filter(name=name).order_by("pk"))
        if not existing:
            Schedule.objects.create(name=name, repeats=-1, next_run=clock.now(), **fields)
            changes.append(f"created {name}")
            continue
        keep, duplicates = existing[0], existing[1:]
        for duplicate in duplicates:
            duplicate.delete()
            changes.append(f"removed duplicate {name}")
        changed = [k for k, v in fields.items() if getattr(keep, k) != v]
        if changed or keep.repeats != -1:
            for key in changed:
                setattr(keep, key, fields[key])
            keep.repeats = -1
            keep.save()
            changes.append(f"updated {name} ({', '.join(changed) or 'repeats'})")
    return changes
