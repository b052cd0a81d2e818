"""A delivery's way to the queue (``exports.services.dispatch``): duplicates enqueued once, a
queued check coalescing new deliveries, the statements the hot path costs, and a broker that
refuses the task (with the ORM broker and with one outside the database).

The fixtures (``hook``, ``tasks``) and helpers are in ``tests/fixtures/webhooks.py``.
"""

import json
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from exports import clock, webhook_views
from exports.models import Company, WebhookDelivery
from exports.services import dispatch as webhook_dispatch
from exports.services import webhooks as webhook_services
from exports.services.dispatch import queued_marker_ttl
from tests.factories import make_company
from tests.fixtures.webhooks import Hook, job_event, only_delivery

State = WebhookDelivery.State


# --- Duplicates and broker failures ---------------------------------------------------------------


def test_duplicate_delivery_is_enqueued_once(hook, tasks, django_capture_on_commit_callbacks):
    body = job_event(hook.company)
    with django_capture_on_commit_callbacks(execute=True):
        first = hook.post(body, msg_id="msg_dup")
    # A retry: same id and body, fresh timestamp and signature.
    clock.advance(30)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        second = hook.post(body, msg_id="msg_dup")
    assert first.status_code == second.status_code == 200
    assert second.json() == {"status": "duplicate"}
    assert callbacks == []
    assert len(tasks) == 1
    assert only_delivery().state == State.ENQUEUED


def test_new_delivery_while_a_check_is_queued_is_coalesced(hook, tasks):
    """A new delivery while a check of its company is queued is stored; no second task."""
    Company.objects.filter(pk=hook.company.pk).update(check_queued_at=clock.now())
    assert hook.post().status_code == 200
    assert only_delivery().state == State.ENQUEUED
    assert tasks == []


def test_delivery_after_a_lost_queued_check_is_enqueued_again(
    hook, tasks, django_capture_on_commit_callbacks
):
    """A marker older than its lifetime (the queued task was lost) no longer coalesces."""
    lost_at = clock.now() - queued_marker_ttl() - timedelta(seconds=1)
    Company.objects.filter(pk=hook.company.pk).update(check_queued_at=lost_at)
    with django_capture_on_commit_callbacks(execute=True):
        assert hook.post().status_code == 200
    assert len(tasks) == 1
    assert Company.objects.get(pk=hook.company.pk).check_queued_at > lost_at + queued_marker_ttl()


def test_delivery_after_the_queue_moved_past_a_lost_check_is_enqueued_again(
    hook, tasks, django_capture_on_commit_callbacks
):
    """The queue's progress comes with the webhook's one read (plain SQL: SQLite gives text)."""
    lost_at = clock.now() - timedelta(minutes=5)
    Company.objects.filter(pk=hook.company.pk).update(check_queued_at=lost_at)
    other = make_company(name="Picked up later")
    Company.objects.filter(pk=other.pk).update(
        check_picked_queued_at=lost_at + timedelta(minutes=2)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert hook.post().status_code == 200
    assert len(tasks) == 1


def _statements(captured) -> list[str]:
    """The statements a request ran, without the test transaction's savepoints."""
    return [
        query["sql"].split()[0].upper()
        for query in captured.captured_queries
        if "SAVEPOINT" not in query["sql"].upper()
    ]


def test_coalesced_delivery_costs_one_read_and_one_insert(hook, tasks):
    """The hot path (benchmark 2): a check of the company is queued already, so the delivery
    is one joined read (endpoint, secrets, company, marker) and the row's insert."""
    Company.objects.filter(pk=hook.company.pk).update(check_queued_at=clock.now())
    with CaptureQueriesContext(connection) as captured:
        assert hook.post().status_code == 200
    assert _statements(captured) == ["SELECT", "INSERT"]
    assert only_delivery().state == State.ENQUEUED


def test_new_delivery_costs_read_insert_marker_and_task(hook, tasks, monkeypatch):
    """With the ORM broker the task row is written in the delivery's transaction (one write
    transaction: the delivery, the marker, the task)."""
    monkeypatch.setattr(webhook_dispatch, "task_commits_with_transaction", lambda: True)
    with CaptureQueriesContext(connection) as captured:
        assert hook.post().status_code == 200
    # (The fake broker's "insert" is its own SELECT of the deliveries it can see.)
    assert _statements(captured) == ["SELECT", "INSERT", "UPDATE", "SELECT"]
    assert tasks.seen_rows == [[(only_delivery().webhook_id, State.ENQUEUED)]]
    assert len(tasks) == 1


def test_with_another_broker_the_task_is_sent_when_the_delivery_commits(
    hook, tasks, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(webhook_dispatch, "task_commits_with_transaction", lambda: False)
    with CaptureQueriesContext(connection) as captured:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            assert hook.post().status_code == 200
    assert _statements(captured) == ["SELECT", "INSERT", "UPDATE"]
    assert len(callbacks) == 1 and tasks == []


def test_delivery_for_an_unknown_company_reads_the_endpoint_alone(hook, tasks):
    other = uuid.uuid4()
    body = json.dumps(
        {
            "eventType": "v1.export-job.created",
            "data": {"id": str(uuid.uuid4()), "companyId": str(other)},
        }
    ).encode()
    with CaptureQueriesContext(connection) as captured:
        response = hook.post(body)
    assert response.status_code == 200
    assert _statements(captured) == ["SELECT", "SELECT", "INSERT"]
    delivery = only_delivery()
    assert delivery.state == State.IGNORED
    assert str(other) in delivery.error
    assert tasks == []


def test_concurrent_duplicate_falls_back_on_the_unique_constraint(hook, tasks, monkeypatch):
    """The other request stores the same webhook id between our lookup and our insert."""
    real_find = webhook_views.webhook_target_find

    def racing_find(**kwargs):
        target = real_find(**kwargs)
        WebhookDelivery.objects.create(
            endpoint=hook.endpoint,
            webhook_id="msg_race",
            webhook_timestamp=clock.now(),
            body="{}",
            received_at=clock.now(),
            company=hook.company,
            state=State.ENQUEUED,
        )
        return target

    monkeypatch.setattr(webhook_views, "webhook_target_find", racing_find)
    response = hook.post(msg_id="msg_race")
    assert response.status_code == 200
    assert response.json() == {"status": "duplicate"}
    assert WebhookDelivery.objects.count() == 1
    assert tasks == []


def test_stale_received_duplicate_is_enqueued_again(
    hook, tasks, django_capture_on_commit_callbacks
):
    body = job_event(hook.company)
    WebhookDelivery.objects.create(
        endpoint=hook.endpoint,
        webhook_id="msg_crashed",
        webhook_timestamp=clock.now(),
        body=body.decode(),
        received_at=clock.now() - timedelta(minutes=5),
        company=hook.company,
        state=State.RECEIVED,
    )
    fresh = WebhookDelivery.objects.create(
        endpoint=hook.endpoint,
        webhook_id="msg_in_flight",
        webhook_timestamp=clock.now(),
        body=body.decode(),
        received_at=clock.now(),
        company=hook.company,
        state=State.RECEIVED,
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert hook.post(body, msg_id="msg_in_flight").status_code == 200
    assert tasks == []
    with django_capture_on_commit_callbacks(execute=True):
        assert hook.post(body, msg_id="msg_crashed").status_code == 200
    assert len(tasks) == 1
    assert WebhookDelivery.objects.get(webhook_id="msg_crashed").state == State.ENQUEUED
    fresh.refresh_from_db()
    assert fresh.state == State.RECEIVED


def _post_to_a_refusing_broker(tasks, monkeypatch, *, commits_with_transaction: bool):
    """A delivery ``msg_fail`` posted while the broker refuses the task: (hook, body, response)."""
    for module in (webhook_dispatch, webhook_services):
        monkeypatch.setattr(
            module, "task_commits_with_transaction", lambda: commits_with_transaction
        )
    hook = Hook()
    tasks.fail = True
    body = job_event(hook.company)
    return hook, body, hook.post(body, msg_id="msg_fail")


@pytest.mark.django_db(transaction=True)
def test_row_is_committed_before_enqueue_and_survives_an_enqueue_failure(tasks, monkeypatch):
    """A broker outside the database (Redis): the row is committed first, then the task sent."""
    hook, body, response = _post_to_a_refusing_broker(
        tasks, monkeypatch, commits_with_transaction=False
    )
    assert response.status_code == 503
    assert response.json() == {
        "status": "enqueue_failed",
        "detail": "stored; the check could not be queued",
    }
    assert response["Retry-After"] == "60"
    # When async_task ran, the delivery was already stored.
    assert tasks.seen_rows == [[("msg_fail", State.ENQUEUED)]]
    delivery = only_delivery()
    assert delivery.state == State.ENQUEUE_FAILED
    assert "broker down" in delivery.error
    hook.company.refresh_from_db()
    assert hook.company.check_queued_at is None

    # Pleo retries the same webhook id: this time the broker takes it.
    tasks.fail = False
    tasks.seen_rows.clear()
    clock.advance(60)
    retry = hook.post(body, msg_id="msg_fail")
    assert retry.status_code == 200
    assert retry.json() == {"status": "duplicate"}
    assert len(tasks) == 1
    delivery.refresh_from_db()
    assert delivery.state == State.ENQUEUED and delivery.error == ""
    hook.company.refresh_from_db()
    assert hook.company.check_queued_at is not None

    # A further retry is a plain duplicate.
    assert hook.post(body, msg_id="msg_fail").status_code == 200
    assert len(tasks) == 1


@pytest.mark.django_db(transaction=True)
def test_with_the_orm_broker_a_refused_task_rolls_the_delivery_back(tasks, monkeypatch):
    """The ORM broker writes the task in the delivery's transaction: a failure there stores
    nothing (no delivery claiming a check that is not queued), and Pleo's retry is new."""
    hook, body, response = _post_to_a_refusing_broker(
        tasks, monkeypatch, commits_with_transaction=True
    )
    assert response.status_code == 503
    assert response.json()["detail"] == "not stored: the check could not be queued; send it again"
    assert response["Retry-After"] == "60"
    assert tasks.seen_rows == [[("msg_fail", State.ENQUEUED)]]  # inside the transaction
    assert WebhookDelivery.objects.count() == 0
    hook.company.refresh_from_db()
    assert hook.company.check_queued_at is None

    tasks.fail = False
    clock.advance(60)
    retry = hook.post(body, msg_id="msg_fail")
    assert retry.status_code == 200
    assert retry.json() == {"status": "enqueued"}
    assert len(tasks) == 1
    assert only_delivery().state == State.ENQUEUED


@pytest.mark.django_db(transaction=True)
def test_valid_delivery_is_enqueued_with_its_row_visible_over_the_real_transaction(tasks):
    hook = Hook()
    response = hook.post(msg_id="msg_live")
    assert response.status_code == 200
    assert tasks.seen_rows == [[("msg_live", State.ENQUEUED)]]
    assert len(tasks) == 1
