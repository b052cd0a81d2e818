"""The export lifecycle's reporting against the Pleo sandbox
(``exports.services.lifecycle_reporting``): ``PUT …/items`` in batches of at most 100 (a 413
halves the batch), an unknown outcome settled by re-reading the items, and per-item refusals.
"""

from __future__ import annotations

from collections import Counter

import pytest

from exports.models import ExportItemRecord, JournalEntry
from exports.services.start_flow import Outcome
from tests import lifecycle_support
from tests.lifecycle_support import audit

pytestmark = pytest.mark.django_db

env = lifecycle_support.env  # the sandbox company of the lifecycle tests (a fixture)


# --- batches ----------------------------------------------------------------------------------


def test_more_than_100_items_are_reported_in_batches_of_at_most_100_each_once(env):
    job_id = env.job(150)
    assert env.run().outcome == Outcome.COMPLETED
    assert [len(e["body"]) for e in env.puts(job_id)] == [100, 50]
    ids = env.put_ids(job_id)
    assert len(ids) == len(set(ids)) == 150
    assert JournalEntry.objects.count() == 150
    items_pages = env.state.requests("GET", f"/v3/export-jobs/{job_id}/items")
    assert len(items_pages) > 1  # every page was read


def test_a_413_halves_the_batch_and_each_item_is_applied_once(env):
    job_id = env.job(6)
    env.state.add_fault(
        "status",
        "PUT",
        "/v3/export-jobs/{jobId}/items",
        status=413,
        body={
            "type": "EXPORT_JOB_ITEMS_UPDATE_LIMIT",
            "message": "Number of items to update is more than 100.",
        },
    )
    assert env.run().outcome == Outcome.COMPLETED
    assert [(e["status"], len(e["body"])) for e in env.puts(job_id)] == [
        (413, 6),
        (200, 3),
        (200, 3),
    ]
    assert len(set(env.put_ids(job_id))) == len(env.put_ids(job_id)) == 6
    assert audit(env, "batch_too_large").http_status == 413


# --- unknown outcomes and refusals -----------------------------------------------------------


@pytest.mark.parametrize(("kind", "sent_twice"), [("apply_then_drop", False), ("status", True)])
def test_an_unknown_put_outcome_is_reconciled_and_only_unapplied_updates_are_resent(
    env, settings, kind, sent_twice
):
    settings.PLEO_ITEMS_BATCH_SIZE = 2
    job_id = env.job(3)
    env.state.add_fault(kind, "PUT", "/v3/export-jobs/{jobId}/items", status=503)
    assert env.run().outcome == Outcome.COMPLETED
    ids = [u["accountingEntryId"] for e in env.puts(job_id) for u in e["body"]]
    counts = Counter(ids)
    assert len(counts) == 3
    # Dropped after it was applied: nothing is sent twice. Refused with 503: the two are resent.
    assert sorted(counts.values()) == ([1, 2, 2] if sent_twice else [1, 1, 1])
    assert audit(env, "report_reconciled") is not None
    assert len(env.final_events(job_id)) == 1


def test_per_item_errors_are_audited_and_the_item_stays_unreported(env):
    job_id = env.job(3)
    rejected = list(env.items(job_id))[0]
    env.state.add_fault(
        "status",
        "PUT",
        "/v3/export-jobs/{jobId}/items",
        status=200,
        body={
            "data": [],
            "errors": [
                {
                    "accountingEntryId": rejected,
                    "type": "ACCOUNTING_ENTRY_DOES_NOT_EXIST",
                    "message": "Accounting entry does not exist.",
                }
            ],
        },
    )
    assert env.run().outcome == Outcome.STARTED  # not finished: items still open in Pleo
    record = ExportItemRecord.objects.get(accounting_entry_id=rejected)
    assert record.state == "booked"
    assert rejected in audit(env, "item_report_rejected").message
    assert env.final_events(job_id) == []
    assert env.run(recover=True).outcome == Outcome.COMPLETED
    assert JournalEntry.objects.count() == 3
