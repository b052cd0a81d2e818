"""``GET /healthz``: is the bridge able to do its work?

Checks: the database answers; the worker's broker answers (Redis ``PING`` with a short timeout
when ``REDIS_URL`` is set, otherwise the ORM broker's table in the database); a worker heartbeat
(any ``WorkerHeartbeat`` row but the tick row) was seen recently; the last completed poll tick is
not older than twice ``PLEO_POLL_INTERVAL_MINUTES``. 200 ``{"status": "ok", "checks": {...}}``
when all pass, 503 ``{"status": "unhealthy", "failing": [...], "checks": {...}}`` otherwise.
Details name the problem, never a URL, password or exception text that might hold one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connections
from django.http import JsonResponse
from django.views.decorators.http import require_safe

from exports import clock
from exports.models import WorkerHeartbeat

WORKER_HEARTBEAT_MAX_AGE = timedelta(minutes=3)
REDIS_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str

    def as_dict(self) -> dict:
        return {"ok": self.ok, "detail": self.detail}


def _failure(what: str, exc: BaseException) -> CheckResult:
    return CheckResult(False, f"{what} ({type(exc).__name__})")


def check_database() -> CheckResult:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not reachable"
        return _failure("database not reachable", exc)
    return CheckResult(True, "reachable")


def _redis_ping(url: str) -> None:
    import redis

    client = redis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
    )
    try:
        if not client.ping():
            raise ConnectionError("PING was not answered")
    finally:
        client.close()


def _orm_broker_probe(alias: str) -> None:
    from django_q.models import OrmQ

    OrmQ.objects.using(alias).exists()


def check_broker() -> CheckResult:
    redis_url = settings.REDIS_URL
    if redis_url:
        try:
            _redis_ping(redis_url)
        except Exception as exc:
            return _failure("Redis broker not reachable", exc)
        return CheckResult(True, "redis: PING answered")
    alias = settings.Q_CLUSTER.get("orm", "default")
    try:
        _orm_broker_probe(alias)
    except Exception as exc:
        return _failure("ORM broker (database queue table) not reachable", exc)
    return CheckResult(True, f"orm ({alias}): queue table readable")


def _age_text(seconds: float) -> str:
    return f"{int(seconds)} s ago"


def check_worker() -> CheckResult:
    now = clock.now()
    try:
        latest = (
            WorkerHeartbeat.objects.exclude(name=WorkerHeartbeat.TICK)
            .order_by("-last_seen_at")
            .first()
        )
    except DatabaseError as exc:
        return _failure("worker heartbeat unreadable", exc)
    if latest is None:
        return CheckResult(False, "no worker heartbeat recorded: is the worker running?")
    age = (now - latest.last_seen_at).total_seconds()
    limit = WORKER_HEARTBEAT_MAX_AGE.total_seconds()
    if age > limit:
        return CheckResult(
            False, f"worker heartbeat stale: last seen {_age_text(age)} (limit {int(limit)} s)"
        )
    return CheckResult(True, f"last seen {_age_text(max(age, 0))}")


def check_tick() -> CheckResult:
    now = clock.now()
    limit = timedelta(minutes=2 * settings.PLEO_POLL_INTERVAL_MINUTES).total_seconds()
    try:
        tick = WorkerHeartbeat.objects.filter(name=WorkerHeartbeat.TICK).first()
    except DatabaseError as exc:
        return _failure("poll tick unreadable", exc)
    if tick is None:
        return CheckResult(False, "no poll tick completed yet: is the scheduler running?")
    age = (now - tick.last_seen_at).total_seconds()
    if age > limit:
        return CheckResult(
            False, f"poll tick stale: last completed {_age_text(age)} (limit {int(limit)} s)"
        )
    return CheckResult(True, f"last completed {_age_text(max(age, 0))}")


def run_checks() -> dict[str, CheckResult]:
    return {
        "database": check_database(),
        "broker": check_broker(),
        "worker": check_worker(),
        "tick": check_tick(),
    }


@require_safe
def healthz(request):
    results = run_checks()
    checks = {name: result.as_dict() for name, result in results.items()}
    failing = [name for name, result in results.items() if not result.ok]
    if failing:
        return JsonResponse(
            {"status": "unhealthy", "failing": failing, "checks": checks},
            status=503,
            headers={"Cache-Control": "no-store"},
        )
    return JsonResponse(
        {"status": "ok", "checks": checks}, status=200, headers={"Cache-Control": "no-store"}
    )
