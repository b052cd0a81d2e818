"""The broker client used to queue checks: one per process, not one per task.

django-q2's ``async_task`` makes a new broker per call unless one is passed; with Redis that
was a new connection per webhook (benchmark 1: most of the web answer's time).
"""

import pytest
from django_q.brokers import Broker

from exports.services import dispatch

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
