"""Worker heartbeats and the last completed poll tick, read by the health check."""

from __future__ import annotations

from exports import clock
from exports.audit import worker_identity
from exports.models import WorkerHeartbeat


def heartbeat_beat(*, name: str | None = None) -> None:
    now = clock.now()
    obj, created = WorkerHeartbeat.objects.get_or_create(
        name=name or f"worker {worker_identity()}",
        defaults={"started_at": now, "last_seen_at": now},
    )
    if not created:
        WorkerHeartbeat.objects.filter(pk=obj.pk).update(last_seen_at=now)


def heartbeat_tick_completed() -> None:
    heartbeat_beat(name=WorkerHeartbeat.TICK)
