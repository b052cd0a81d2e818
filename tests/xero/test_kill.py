"""Booking in Xero with the worker killed by SIGKILL mid-job, then recovered by a fresh worker.

The worker is a separate process, a ``qcluster`` (started and stopped as the reliability crash
scenarios do: ``tests/processes.py``, ``tests/reliability/support.py``), carrying a job of the
Pleo sandbox into the local Xero over real HTTP; both sandboxes serve from this test process and
the worker shares the test database (a file, or PostgreSQL when ``DATABASE_URL`` says so).

Two kills, each where the harm would be:

* **Between Xero's answer and our record.** ``PLEO_CRASH_AT=after_adapter_call``
  (:mod:`exports.crashpoints`): the worker sends itself SIGKILL once Xero has answered the batch
  (the documents exist in Xero) and before its ``XeroBooking`` rows know their document ids;
  nothing is reported to Pleo and no receipt is attached yet.
* **In the middle of the receipt uploads.** The local Xero holds the third upload (a latency
  fault) and the test kills the worker's whole process group while it is in flight; Xero then
  stores that file anyway, an upload we never recorded.

Then the cluster is gone (SIGKILL to its process group) and a fresh one, without the crash
point, recovers through its own sweep (the lease lapses after 3 s). Afterwards: every item
booked once in Xero (the local Xero's documents counted, one ``PUT`` of the batch), reported once
to Pleo, each receipt attached once (the local Xero's attachments counted), one final event, and
no traceback or secret in the processes' logs.
"""

from __future__ import annotations

import mimetypes
import time
from collections import Counter

import pytest

from exports.models import AuditEntry, ExportItemRecord, Trigger, XeroBooking
from exports.services.dispatch import company_check_enqueue
from tests import processes, secrets_registry
from tests.reliability import support
from tests.reliability.test_crash_recovery import FAST_RECOVERY
from tests.test_lifecycle import env  # noqa: F401 - the lifecycle tests' sandbox company
from tests.xero.test_booking import bx  # noqa: F401 - that company connected to the local Xero

pytestmark = [pytest.mark.slow, pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

# What the worker process needs of the in-process settings ``bx`` made (the local Xero's URLs
# and OAuth client, the budget in the test database as in ``bx``).
XERO_SETTINGS = (
    "XERO_CLIENT_ID",
    "XERO_CLIENT_SECRET",
    "XERO_API_BASE_URL",
    "XERO_IDENTITY_BASE_URL",
    "XERO_LOGIN_BASE_URL",
    "XERO_BUDGET_WAIT_SECONDS",
    "PLEO_RATE_LIMIT_BACKEND",
)
ATTACHMENTS = r".*/Attachments/.*"
HELD_SECONDS = 3.0  # how long the local Xero holds the upload the worker dies during


class Worker:
    """The company's qcluster processes of one test, with the local Xero's settings."""

    def __init__(self, bx, product_env, tmp_path, settings):  # noqa: F811
        self.bx = bx
        self.procs = support.Processes(tmp_path)
        self.env = support.product_env(
            product_env,
            **{name: getattr(settings, name) for name in XERO_SETTINGS},
            **FAST_RECOVERY,
        )
        secrets_registry.register(bx.env.key.key)

    def start(self, name: str, **extra):
        return self.procs.qcluster(name, {**self.env, **{k: str(v) for k, v in extra.items()}})

    def enqueue(self) -> None:
        company_check_enqueue(company_id=self.bx.env.company.pk, trigger=Trigger.SCHEDULE)

    def wait_final(self, job_id: str) -> None:
        try:
            processes.wait_until(
                lambda: self.bx.env.pleo(job_id)["job"]["status"] in support.TERMINAL,
                timeout=90,
                message="the job final",
            )
        except TimeoutError:
            pytest.fail(
                f"job not final after the restart: {self.bx.env.pleo(job_id)['job']['status']}\n"
                + "\n".join(f"--- {k}\n{v[-4000:]}" for k, v in self.procs.texts().items())
            )
        time.sleep(0.5)  # let the run release its lease and write its audit

    def logs_clean(self) -> None:
        assert not self.procs.tracebacks(), self.procs.texts()
        support.assert_no_secret_in(self.procs.texts(), secrets_registry.current())


@pytest.fixture
def worker(bx, product_env, tmp_path, settings):  # noqa: F811
    started = Worker(bx, product_env, tmp_path, settings)
    try:
        yield started
    finally:
        started.procs.stop_all()


def uploads(log: list[dict]) -> list[dict]:
    return [e for e in log if e["method"] == "PUT" and "/Attachments/" in e["path"]]


def booked_once_reported_once(bx, job_id: str, items: int) -> None:  # noqa: F811
    """Every item one document in Xero (one ``PUT`` of the batch), reported once to Pleo, each
    receipt attached once; the job completed with one final event."""
    journals = bx.documents()
    assert len(journals) == items
    pleo_items = bx.env.items(job_id)
    narrations = Counter(
        entry for journal in journals for entry in pleo_items if entry in journal["Narration"]
    )
    assert narrations == Counter(dict.fromkeys(pleo_items, 1))  # each item in one document
    assert len([w for w in bx.writes() if w["path"].endswith("/ManualJournals")]) == 1
    assert sorted(bx.env.put_ids(job_id)) == sorted(pleo_items)  # reported once
    assert {i["status"] for i in pleo_items.values()} == {"successful"}
    assert [e["body"]["event"] for e in bx.env.final_events(job_id)] == ["completed"]
    records = ExportItemRecord.objects.filter(export_job__pleo_job_id=job_id)
    assert {r.external_id for r in records} == {j["ManualJournalID"] for j in journals}
    for record in records:
        attached = bx.xero.state.attachments(bx.tenant.id, record.external_id)
        assert len(attached) == record.receipts.count()  # attached once each
        # Named as the first run names them (their type's extension kept), never twice.
        assert len({a["FileName"] for a in attached}) == len(attached)
        for attachment in attached:
            extension = mimetypes.guess_extension(attachment["MimeType"])
            assert attachment["FileName"].endswith(extension), attachment
    assert AuditEntry.objects.filter(step="item_recovered").count() == items


def test_killed_between_xeros_answer_and_our_record_a_fresh_worker_books_once(bx, worker):  # noqa: F811
    job_id = bx.job({"normal": 4, "refund": 1})
    receipts = sum(len(i["files"]) for i in bx.env.state.export_items(job_id))
    assert receipts > 0
    crashing = worker.start("crashing", PLEO_CRASH_AT="after_adapter_call")
    worker.enqueue()
    processes.wait_until(lambda: worker.procs.crashes() >= 1, timeout=60, message="the crash")
    processes.kill_group(crashing)  # the machine is gone: nothing of the old cluster survives

    assert len(bx.documents()) == 5  # Xero booked the batch …
    assert XeroBooking.objects.count() == 5  # … written before the call,
    assert not XeroBooking.objects.filter(document_id__isnull=False).exists()  # never completed
    assert bx.env.put_ids(job_id) == []  # nothing reported to Pleo
    assert not uploads(bx.xero.state.requests())  # no receipt attached yet

    worker.start("recovering")
    worker.wait_final(job_id)
    booked_once_reported_once(bx, job_id, 5)
    assert len(uploads(bx.xero.state.requests())) == receipts  # each receipt sent once
    worker.logs_clean()


def test_killed_in_the_middle_of_the_receipt_uploads_each_receipt_is_attached_once(bx, worker):  # noqa: F811
    job_id = bx.job({"normal": 6})
    receipts = sum(len(i["files"]) for i in bx.env.state.export_items(job_id))
    assert receipts >= 4  # two sent, one in flight at the kill, at least one never begun
    bx.xero.state.add_fault("latency", "PUT", path_regex=ATTACHMENTS, seconds=0, count=2)
    bx.xero.state.add_fault("latency", "PUT", path_regex=ATTACHMENTS, seconds=HELD_SECONDS)
    killed = worker.start("killed")
    worker.enqueue()
    log = bx.xero.state.request_log.wait_for(lambda log: len(uploads(log)) >= 3, timeout=60)
    processes.kill_group(killed)  # SIGKILL while Xero holds the third upload

    sent = uploads(log)
    assert [e["complete"] for e in sent] == [True, True, False]
    # Xero stores the held file after all: an upload we never recorded.
    bx.xero.state.request_log.wait_for(
        lambda log: all(e["complete"] for e in uploads(log)), timeout=HELD_SECONDS + 10
    )
    stored = sum(
        len(bx.xero.state.attachments(bx.tenant.id, j["ManualJournalID"])) for j in bx.documents()
    )
    assert stored == 3
    assert sum(len(b.attached) for b in XeroBooking.objects.all()) == 2  # what we recorded
    assert len(bx.documents()) == 6
    assert bx.env.put_ids(job_id) == []

    worker.start("recovering")
    worker.wait_final(job_id)
    booked_once_reported_once(bx, job_id, 6)
    # Only the upload in flight at the kill was sent again (Xero answered it from its
    # Idempotency-Key); the two recorded ones were not.
    assert len(uploads(bx.xero.state.requests())) == receipts + 1
    worker.logs_clean()
