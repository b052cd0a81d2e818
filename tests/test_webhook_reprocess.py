"""Reprocessing a failed delivery (``webhook_delivery_reprocess``, the admin's action): the
company's check is enqueued again; other states, an unknown or inactive company and a broker
failure are refused.

The fixtures (``hook``, ``tasks``) and helpers are in ``tests/fixtures/webhooks.py``.
"""

import uuid

import pytest

from exports import clock
from exports.models import Company, Trigger, WebhookDelivery
from exports.services.webhooks import WebhookReprocessError, webhook_delivery_reprocess
from tests.fixtures.webhooks import Hook

State = WebhookDelivery.State


# --- Reprocess ------------------------------------------------------------------------------------


def make_delivery(hook, state, *, company=True):
    return WebhookDelivery.objects.create(
        endpoint=hook.endpoint,
        webhook_id=f"msg_{uuid.uuid4().hex}",
        webhook_timestamp=clock.now(),
        body="{}",
        received_at=clock.now(),
        company=hook.company if company else None,
        state=state,
        error="earlier failure",
    )


@pytest.mark.parametrize("state", [State.ENQUEUE_FAILED, State.FAILED])
def test_reprocess_enqueues_the_company_again(
    hook, tasks, state, django_capture_on_commit_callbacks
):
    delivery = make_delivery(hook, state)
    with django_capture_on_commit_callbacks(execute=True):
        message = webhook_delivery_reprocess(delivery=delivery)
    assert "queued" in message and "Acme" in message
    assert [call[0][1:3] for call in tasks] == [(hook.company.pk, Trigger.MANUAL)]
    delivery.refresh_from_db()
    assert delivery.state == State.ENQUEUED and delivery.error == ""


@pytest.mark.parametrize("state", [State.ENQUEUED, State.IGNORED, State.RECEIVED, State.PROCESSED])
def test_reprocess_refuses_other_states(hook, tasks, state):
    delivery = make_delivery(hook, state)
    with pytest.raises(WebhookReprocessError, match="only failed"):
        webhook_delivery_reprocess(delivery=delivery)
    assert tasks == []


def test_reprocess_without_company_or_with_inactive_company(hook, tasks):
    with pytest.raises(WebhookReprocessError, match="not linked"):
        webhook_delivery_reprocess(delivery=make_delivery(hook, State.FAILED, company=False))
    Company.objects.filter(pk=hook.company.pk).update(active=False)
    with pytest.raises(WebhookReprocessError, match="inactive"):
        webhook_delivery_reprocess(delivery=make_delivery(hook, State.FAILED))
    assert tasks == []


@pytest.mark.django_db(transaction=True)
def test_reprocess_reports_a_broker_failure(tasks):
    hook = Hook()
    tasks.fail = True
    delivery = make_delivery(hook, State.ENQUEUE_FAILED)
    with pytest.raises(WebhookReprocessError, match="could not be queued"):
        webhook_delivery_reprocess(delivery=delivery)
    delivery.refresh_from_db()
    assert delivery.state == State.ENQUEUE_FAILED
    assert "broker down" in delivery.error
