"""Queueing checks: one broker client per process (not one per task), and when the task is
written: inside the trigger's transaction with the ORM broker, at commit with any other.

django-q2's ``async_task`` makes a new broker per call unless one is passed; with Redis that
was a new connection per webhook (benchmark 1: most of the web answer's time).
"""

import pytest
from django.db import transaction
from django_q.brokers import Broker

from exports.models import Trigger
from exports.services import dispatch
from tests.factories import make_company

# The ORM broker checks the connection when it is made.
pytestmark = pytest.mark.django_db


def test_one_broker_client_a_process(monkeypatch):
    monkeypatch.setattr(dispatch, "_brokers", {})
    first = dispatch._broker()
    assert isinstance(first, Broker)
    assert dispatch._broker() is first


def test_a_forked_process_makes_its_own(monkeypatch):
    monkeypatch.setattr(dispatch, "_brokers", {})
    parent = dispatch._broker()
    monkeypatch.setattr(dispatch.os, "getpid", lambda: -1)
    child = dispatch._broker()
    assert child is not parent
    assert dispatch._broker() is child
    assert len(dispatch._brokers) == 1  # the parent's is dropped, not kept beside it


def test_other_broker_settings_get_another_client(monkeypatch):
    monkeypatch.setattr(dispatch, "_brokers", {})
    orm = dispatch._broker()
    monkeypatch.setattr(dispatch.Conf, "CLUSTER_NAME", "other-cluster")
    other = dispatch._broker()
    assert other is not orm
    assert other.list_key != orm.list_key


@pytest.mark.parametrize(
    ("in_database", "sent_inside", "callbacks_after"),
    [
        # The ORM broker: the task row commits (or rolls back) with the trigger's rows (an outbox).
        (True, 1, 0),
        # Any other broker: sent once the transaction has committed.
        (False, 0, 1),
    ],
    ids=["orm-broker-inside-the-transaction", "other-broker-at-commit"],
)
def test_when_a_check_is_sent_relative_to_the_callers_transaction(
    monkeypatch, django_capture_on_commit_callbacks, in_database, sent_inside, callbacks_after
):
    sent = []
    monkeypatch.setattr(dispatch, "async_task", lambda *a, **k: sent.append(a))
    monkeypatch.setattr(dispatch, "task_commits_with_transaction", lambda: in_database)
    company = make_company(name="Outbox")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            assert dispatch.company_check_enqueue(company_id=company.pk, trigger=Trigger.MANUAL)
            assert len(sent) == sent_inside
    assert len(callbacks) == callbacks_after
    assert len(sent) == 1


def test_the_orm_broker_on_the_default_database_is_the_outbox_case(monkeypatch):
    monkeypatch.setattr(dispatch.Conf, "ORM", "default")
    monkeypatch.setattr(dispatch.Conf, "BROKER_CLASS", None)
    assert dispatch.task_commits_with_transaction()
    monkeypatch.setattr(dispatch.Conf, "ORM", None)
    assert not dispatch.task_commits_with_transaction()
