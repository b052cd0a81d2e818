"""``manage.py notify_health``: a dead worker cannot report its own death, so cron asks.

With the worker stopped (its heartbeat stale) the command sends exactly one message, directly
(not through the queue), and no more within the window however often cron runs it.
"""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from exports import clock
from exports.models import Notification, WorkerHeartbeat
from tests.fixtures.notify import INTEGRATOR
from tests.processes import ROOT, manage

pytestmark = pytest.mark.django_db


def beat(name: str, age_seconds: float) -> None:
    when = clock.now() - timedelta(seconds=age_seconds)
    WorkerHeartbeat.objects.update_or_create(
        name=name, defaults={"started_at": when, "last_seen_at": when}
    )


def beats(settings, *, worker_age: float, tick_age: float) -> None:
    """A five-minute poll interval; the worker and the poll tick last seen that long ago."""
    settings.PLEO_POLL_INTERVAL_MINUTES = 5
    beat("worker host:1", worker_age)
    beat(WorkerHeartbeat.TICK, tick_age)


def notify_health(capsys) -> tuple[int, str]:
    try:
        call_command("notify_health")
    except CommandError as exc:  # nobody could be told: on stderr
        return exc.returncode, capsys.readouterr().out
    except SystemExit as exc:  # unhealthy and told: the exit code only
        return exc.code, capsys.readouterr().out
    return 0, capsys.readouterr().out


@pytest.fixture
def worker_stopped(settings):
    beats(settings, worker_age=600, tick_age=60)  # the worker stopped ten minutes ago


def test_healthy_sends_nothing(notify_settings, receiver, settings, capsys):
    beats(settings, worker_age=30, tick_age=60)
    code, out = notify_health(capsys)
    assert code == 0
    assert "worker: ok" in out and "poll tick: ok" in out
    assert mail.outbox == [] and receiver.received == []


def test_a_stopped_worker_sends_exactly_one_message_an_hour(
    notify_settings, receiver, worker_stopped, capsys
):
    code, out = notify_health(capsys)
    assert code == 1
    assert "worker: MISSING (worker heartbeat stale: last seen 600 s ago" in out
    assert "unhealthy: notified" in out
    assert [m.to for m in mail.outbox] == [[INTEGRATOR]]
    assert len(receiver.received) == 1
    assert notify_settings["queued"] == []  # sent directly, not through the worker's queue
    message = mail.outbox[0]
    assert "The worker or the poll tick is missing" in message.subject
    assert "worker heartbeat stale" in message.body
    assert "python manage.py qcluster" in message.body
    # cron runs it every minute: nothing more within the hour, nothing recorded either.
    for _ in range(58):
        clock.advance(60)
        code, out = notify_health(capsys)
        assert code == 1
        assert "already notified" in out
    assert len(mail.outbox) == 1 and len(receiver.received) == 1
    assert Notification.objects.count() == 1
    clock.advance(121)
    assert notify_health(capsys)[0] == 1
    assert len(mail.outbox) == 2 and len(receiver.received) == 2


def test_a_missing_poll_tick_is_told_too(notify_settings, receiver, settings, capsys):
    beats(settings, worker_age=30, tick_age=700)
    code, out = notify_health(capsys)
    assert code == 1
    assert "poll tick: MISSING" in out
    assert "poll tick stale" in mail.outbox[0].body


def test_nobody_to_tell_exits_2(settings, worker_stopped, capsys):
    settings.NOTIFY_EMAILS = []
    settings.NOTIFY_WEBHOOK_URL = ""
    code, out = notify_health(capsys)
    assert code == 2
    assert "nobody to notify" in out


def test_a_message_that_could_not_be_sent_is_tried_again_by_the_next_run(
    notify_settings, receiver, worker_stopped, settings, capsys
):
    settings.NOTIFY_EMAILS = []
    receiver.answer(503, times=2)
    code, out = notify_health(capsys)
    assert code == 2
    assert "not sent (webhook (127.0.0.1): HTTP 503)" in out
    assert receiver.path not in out
    clock.advance(30)
    assert notify_health(capsys)[0] == 2  # not due again yet (backoff 60 s)
    clock.advance(31)
    code, out = notify_health(capsys)
    assert code == 1
    assert len(receiver.received) == 1
    assert Notification.objects.get().status == Notification.Status.SENT


@pytest.mark.subprocess
def test_the_command_as_cron_runs_it(product_env, receiver, worker_stopped, tmp_path):
    """The real command line: settings from the environment, the exit code, mail on disk."""
    outbox = tmp_path / "mail"
    env = {
        **product_env,
        "NOTIFY_EMAILS": INTEGRATOR,
        "NOTIFY_WEBHOOK_URL": receiver.url,
        "EMAIL_URL": f"filemail:///{outbox}",
        "PUBLIC_BASE_URL": "https://bridge.example",
        "LOG_LEVEL": "WARNING",  # as the README's cron line runs it
    }
    result = subprocess.run(
        manage("notify_health"), env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stderr
    assert "unhealthy: notified" in result.stdout
    assert result.stderr == ""  # nothing for cron to mail every minute
    assert receiver.path not in result.stdout + result.stderr
    assert len(receiver.received) == 1
    mails = [path.read_text() for path in Path(outbox).iterdir()]
    assert len(mails) == 1 and f"To: {INTEGRATOR}" in mails[0]
