"""GET /healthz (database, broker, worker heartbeat, last poll tick) and the root redirect."""

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.test import Client

from exports import clock, health
from exports.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db


def beat(name, age_seconds):
    when = clock.now() - timedelta(seconds=age_seconds)
    WorkerHeartbeat.objects.update_or_create(
        name=name, defaults={"started_at": when, "last_seen_at": when}
    )


@pytest.fixture
def healthy(settings):
    settings.REDIS_URL = ""
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "orm": "default"}
    settings.PLEO_POLL_INTERVAL_MINUTES = 5
    beat("worker host:1", 30)
    beat(WorkerHeartbeat.TICK, 60)


def get():
    response = Client().get("/healthz")
    return response, response.json()


def test_healthy(healthy):
    response, body = get()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "worker", "tick"}
    assert all(check["ok"] for check in body["checks"].values())
    assert response["Cache-Control"] == "no-store"


def test_head_is_allowed_and_post_is_not(healthy):
    assert Client().head("/healthz").status_code == 200
    assert Client().post("/healthz").status_code == 405


def assert_unhealthy(failing, detail_part):
    response, body = get()
    assert response.status_code == 503
    assert body["status"] == "unhealthy"
    assert body["failing"] == failing
    assert detail_part in body["checks"][failing[0]]["detail"]
    return body


def test_stale_worker_heartbeat(healthy):
    beat("worker host:1", 181)
    assert_unhealthy(["worker"], "worker heartbeat stale")


def test_the_freshest_worker_counts(healthy):
    beat("worker host:1", 900)
    beat("worker host:2", 10)
    assert get()[0].status_code == 200


def test_tick_row_is_not_a_worker_heartbeat(healthy):
    WorkerHeartbeat.objects.exclude(name=WorkerHeartbeat.TICK).delete()
    beat(WorkerHeartbeat.TICK, 1)
    assert_unhealthy(["worker"], "no worker heartbeat")


def test_stale_tick(healthy):
    beat(WorkerHeartbeat.TICK, 10 * 60 + 1)
    assert_unhealthy(["tick"], "poll tick stale")


def test_tick_limit_follows_the_poll_interval(healthy, settings):
    beat(WorkerHeartbeat.TICK, 10 * 60 + 1)
    settings.PLEO_POLL_INTERVAL_MINUTES = 6
    assert get()[0].status_code == 200


def test_no_tick_yet(healthy):
    WorkerHeartbeat.objects.filter(name=WorkerHeartbeat.TICK).delete()
    assert_unhealthy(["tick"], "no poll tick")


def test_clock_moving_on_makes_both_stale(healthy):
    clock.advance(3600)
    body = assert_unhealthy(["worker", "tick"], "stale")
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]


def test_broken_orm_broker(healthy, monkeypatch):
    def broken(alias):
        raise OperationalError("no such table: django_q_ormq (secret-looking detail)")

    monkeypatch.setattr(health, "_orm_broker_probe", broken)
    body = assert_unhealthy(["broker"], "ORM broker")
    assert "OperationalError" in body["checks"]["broker"]["detail"]
    assert "secret-looking" not in body["checks"]["broker"]["detail"]


def test_orm_broker_check_reads_the_real_queue_table(healthy):
    assert health.check_broker().ok
    assert health.check_broker().detail.startswith("orm (default)")


def test_broken_database(healthy, monkeypatch):
    class BrokenCursor:
        def __enter__(self):
            raise OperationalError("connection refused")

        def __exit__(self, *exc):
            return False

    class BrokenConnection:
        def cursor(self):
            return BrokenCursor()

    monkeypatch.setattr(health, "connections", {"default": BrokenConnection()})
    assert_unhealthy(["database"], "database not reachable")


def test_unreachable_redis_fails_fast(healthy, settings):
    import time

    settings.REDIS_URL = "redis://:topsecretpw@127.0.0.1:1/0"
    started = time.monotonic()
    body = assert_unhealthy(["broker"], "Redis broker not reachable")
    assert time.monotonic() - started < 3
    assert "topsecretpw" not in str(body)


def test_redis_ping(healthy, settings, redis_url):
    settings.REDIS_URL = redis_url
    response, body = get()
    assert response.status_code == 200
    assert body["checks"]["broker"]["detail"] == "redis: PING answered"


def test_root_redirects_to_admin(db):
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
