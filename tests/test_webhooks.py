"""The webhook view (``exports.webhook_views``) and the delivery services with payloads signed
for real and a CSRF-enforcing client: valid deliveries, and deliveries stored but ignored.
Rejections, duplicates and broker failures, and reprocessing have modules of their own
(``tests/test_webhook_*.py``).

The fixtures (``hook``, ``tasks``) and helpers are in ``tests/fixtures/webhooks.py``.
"""

import json
import uuid
from datetime import timedelta

import pytest

from exports import clock, webhook_views
from exports.models import Company, Trigger, WebhookDelivery
from exports.services.companies import webhook_endpoint_add_secret
from exports.services.dispatch import TASK
from tests.factories import make_company
from tests.fixtures.webhooks import assert_ignored, job_event, new_secret, only_delivery

State = WebhookDelivery.State


# --- Valid deliveries -----------------------------------------------------------------------------


def test_valid_delivery_is_stored_and_enqueued(hook, tasks, django_capture_on_commit_callbacks):
    job_id = uuid.uuid4()
    body = job_event(hook.company, job_id=job_id)
    headers = hook.headers(body, msg_id="msg_first")
    with django_capture_on_commit_callbacks(execute=True):
        response = hook.post(body, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "enqueued"}
    delivery = only_delivery()
    assert delivery.webhook_id == "msg_first"
    assert delivery.state == State.ENQUEUED
    assert delivery.company == hook.company
    assert delivery.pleo_job_id == job_id
    assert delivery.event_type == "v1.export-job.created"
    assert delivery.body == body.decode()
    assert int(delivery.webhook_timestamp.timestamp()) == int(headers["webhook-timestamp"])
    assert delivery.error == ""
    hook.company.refresh_from_db()
    assert hook.company.check_queued_at is not None
    assert tasks == [
        (
            # The task carries its marker (the worker records it as the queue's progress).
            (TASK, hook.company.pk, Trigger.WEBHOOK, False, hook.company.check_queued_at),
            {
                "task_name": f"check company {hook.company.pk} (webhook)",
                "group": "company-checks",
                "save": False,  # successes: the company's last check and the audit show them
            },
        )
    ]


@pytest.mark.parametrize(
    "event_type",
    [
        "v1.export-job.created",
        "export-job.created",
        "v1.export.job-created",
        "v2.export-job.created",
    ],
)
def test_every_spelling_of_the_event_is_accepted(
    hook, tasks, django_capture_on_commit_callbacks, event_type
):
    with django_capture_on_commit_callbacks(execute=True):
        response = hook.post(job_event(hook.company, event_type=event_type))
    assert response.status_code == 200
    assert only_delivery().state == State.ENQUEUED
    assert len(tasks) == 1


def test_job_id_that_is_not_a_uuid_is_not_stored(hook, tasks, django_capture_on_commit_callbacks):
    body = json.loads(job_event(hook.company))
    body["data"]["id"] = "not-a-uuid"
    with django_capture_on_commit_callbacks(execute=True):
        assert hook.post(json.dumps(body).encode()).status_code == 200
    assert only_delivery().pleo_job_id is None
    assert len(tasks) == 1


def test_routes_among_the_credentials_companies(hook, tasks, django_capture_on_commit_callbacks):
    sister = make_company(name="Sister", credential=hook.company.credential)
    with django_capture_on_commit_callbacks(execute=True):
        assert hook.post(job_event(sister)).status_code == 200
    assert only_delivery().company == sister
    assert tasks[0][0][1] == sister.pk


def test_two_active_secrets_during_a_rotation_both_verify(
    hook, tasks, django_capture_on_commit_callbacks
):
    new = new_secret()
    webhook_endpoint_add_secret(endpoint=hook.endpoint, secret=new)
    with django_capture_on_commit_callbacks(execute=True):
        assert hook.post(secret=hook.secret).status_code == 200
        assert hook.post(secret=new).status_code == 200
    assert WebhookDelivery.objects.count() == 2


def test_retired_secret_is_rejected_but_the_new_one_verifies(hook, tasks):
    new = new_secret()
    webhook_endpoint_add_secret(endpoint=hook.endpoint, secret=new)
    entries = hook.endpoint.secret_entries()
    entries[0]["retire_after"] = (clock.now() - timedelta(seconds=1)).isoformat()
    hook.endpoint.set_secret_entries(entries)
    hook.endpoint.save()

    response = hook.post(secret=hook.secret)
    assert response.status_code == 401
    assert webhook_views.rejection_counts() == {"signature_mismatch": 1}
    assert hook.post(secret=new).status_code == 200


def test_secret_retiring_later_still_verifies(hook, tasks):
    entries = hook.endpoint.secret_entries()
    entries[0]["retire_after"] = (clock.now() + timedelta(hours=1)).isoformat()
    hook.endpoint.set_secret_entries(entries)
    hook.endpoint.save()
    assert hook.post().status_code == 200
    clock.advance(3601)
    assert hook.post().status_code == 401


# --- Stored but ignored ---------------------------------------------------------------------------


def test_unknown_company_is_stored_ignored(hook, tasks, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = hook.post(job_event(None))
    delivery = assert_ignored(response, tasks, "Unknown company")
    assert delivery.company is None


def test_company_of_another_credential_is_ignored(hook, tasks, django_capture_on_commit_callbacks):
    stranger = make_company(name="Stranger")
    with django_capture_on_commit_callbacks(execute=True):
        response = hook.post(job_event(stranger))
    assert_ignored(response, tasks, "Unknown company")


def test_inactive_company_is_stored_ignored(hook, tasks, django_capture_on_commit_callbacks):
    Company.objects.filter(pk=hook.company.pk).update(active=False)
    with django_capture_on_commit_callbacks(execute=True):
        response = hook.post()
    delivery = assert_ignored(response, tasks, "inactive")
    assert delivery.company == hook.company


def test_unknown_event_type_is_stored_ignored(hook, tasks, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = hook.post(job_event(hook.company, event_type="v1.vendor.created"))
    delivery = assert_ignored(response, tasks, "Unknown event type (v1.vendor.created)")
    assert delivery.event_type == "v1.vendor.created"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json at all", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"eventType": "v1.export-job.created", "data": {"companyId": 7}}', "companyId"),
        (b'{"eventType": "v1.export-job.created"}', "companyId"),
        (b"\xff\xfe{}\x00", "not UTF-8"),
        (b'{"a": "nul \x00 inside"}', "not JSON"),
        (b'{"eventType": "v1.\\u0000x", "data": {}}', "Unknown event type"),
    ],
)
def test_unusable_body_after_a_valid_signature_is_stored_ignored(
    hook, tasks, django_capture_on_commit_callbacks, body, reason
):
    with django_capture_on_commit_callbacks(execute=True):
        response = hook.post(body)
    delivery = assert_ignored(response, tasks, reason)
    assert "\x00" not in delivery.body + delivery.event_type + delivery.error
