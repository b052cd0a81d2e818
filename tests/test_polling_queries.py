"""Benchmark 3's query counting, and the poll batch's database cost per company it measures.

``bench/common.py``'s ``QueryCounter`` must count the same way on SQLite and PostgreSQL: psycopg
sends BEGIN and COMMIT itself and PostgreSQL's health check sends ``SELECT 1`` on the raw
connection, none of which goes through Django's cursor.
"""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction

from exports import tasks
from exports.models import Company, Trigger
from tests import secrets_registry
from tests.factories import make_company, make_credential

pytestmark = pytest.mark.django_db(transaction=True)

_spec = importlib.util.spec_from_file_location(
    "bench_common", Path(__file__).resolve().parent.parent / "bench" / "common.py"
)
bench_common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_common)
QueryCounter = bench_common.QueryCounter

POSTGRES = connection.vendor == "postgresql"


def test_a_transaction_counts_its_queries_and_one_begin_and_commit_apart():
    make_company(name="Counted")
    with QueryCounter(connection) as counted:
        with transaction.atomic():
            list(Company.objects.select_for_update().values_list("pk"))
            Company.objects.update(recheck_requested=False)
    assert counted.count == 2
    lock = "SELECT FOR UPDATE" if connection.features.has_select_for_update else "SELECT"
    assert counted.kinds == {f"{lock} exports_company": 1, "UPDATE exports_company": 1}
    assert counted.control == {"BEGIN": 1, "COMMIT": 1}
    assert counted.transactions == 1


def test_a_statement_in_autocommit_has_no_transaction_control():
    with QueryCounter(connection) as counted:
        Company.objects.exists()
    assert counted.count == 1
    assert counted.control == {}


def test_savepoints_and_a_rolled_back_transaction_are_transaction_control():
    with QueryCounter(connection) as counted:
        with pytest.raises(RuntimeError), transaction.atomic():
            Company.objects.exists()
            with transaction.atomic():
                Company.objects.exists()
            raise RuntimeError
    assert counted.count == 2
    assert counted.control == {"BEGIN": 1, "SAVEPOINT": 1, "RELEASE": 1, "ROLLBACK": 1}


def test_an_empty_transaction_sends_a_begin_only_where_django_sends_it():
    with QueryCounter(connection) as counted, transaction.atomic():
        pass
    # SQLite: Django sends BEGIN IMMEDIATE at once; psycopg sends BEGIN only before a statement.
    assert counted.control == ({} if POSTGRES else {"BEGIN": 1, "COMMIT": 1})


def test_the_counter_leaves_the_connection_as_it_found_it():
    with QueryCounter(connection):
        pass
    wrapper = connections[DEFAULT_DB_ALIAS]
    for name in ("_commit", "_rollback", "is_usable"):
        assert name not in vars(wrapper)
    assert connection.execute_wrappers == []


@pytest.mark.skipif(not POSTGRES, reason="the health check's SELECT 1 is PostgreSQL's")
def test_the_postgresql_health_check_is_counted_as_a_query():
    connection.ensure_connection()
    enabled = connection.health_check_enabled
    try:
        connection.health_check_enabled = True
        connection.health_check_done = False
        with QueryCounter(connection) as counted:
            Company.objects.exists()
    finally:
        connection.health_check_enabled = enabled
    assert counted.count == 2
    assert counted.kinds["SELECT 1 (connection health check)"] == 1


# --- What the benchmark measures: a poll batch with nothing pending ----------------------------


@pytest.fixture
def idle_companies(pleo_sandbox, settings):
    """Companies with their own key in the sandbox, no job pending."""
    settings.PLEO_RATE_LIMIT_BACKEND = "database"
    state = pleo_sandbox.state

    def make(n: int) -> list[int]:
        ids = []
        for i in range(n):
            remote = state.add_company(f"Idle {uuid.uuid4().hex[:6]} {i}")
            key = state.add_api_key(remote.id)
            secrets_registry.register(key.key)
            credential = make_credential(
                name=f"Idle {remote.id}", api_key=key.key, api_base_url=pleo_sandbox.url
            )
            ids.append(
                make_company(
                    name=remote.name, pleo_company_id=uuid.UUID(remote.id), credential=credential
                ).pk
            )
        return ids

    return make


def _batch_queries(ids: list[int]) -> QueryCounter:
    tasks.run_company_checks(ids, Trigger.SCHEDULE)  # warm: the budget rows exist afterwards
    with QueryCounter(connection) as counted:
        tasks.run_company_checks(ids, Trigger.SCHEDULE)
    return counted


def test_a_poll_batch_costs_a_few_queries_a_company_flat_with_the_batch(idle_companies):
    small, full = idle_companies(5), idle_companies(25)

    per_company_small = _batch_queries(small).count / len(small)
    counted = _batch_queries(full)
    per_company = counted.count / len(full)

    # Benchmark 3's budget is 8 a company with the queue's enqueue, claim and ack (~0.2).
    assert per_company <= 7.5, counted.kinds
    assert abs(per_company_small - per_company) < 1.0
    # One transaction to take the lease and one to release it, a company.
    assert counted.transactions <= 2 * len(full) + 1, counted.control
    if connection.features.has_select_for_update:
        # The lease keeps its row lock on PostgreSQL: taken and released under the lock.
        assert counted.kinds["SELECT FOR UPDATE exports_company"] == 2 * len(full)
    assert Company.objects.filter(pk__in=full, lease_token__isnull=True).count() == len(full)
