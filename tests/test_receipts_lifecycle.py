"""Receipts in the export lifecycle, against the Pleo sandbox over real HTTP: every file of every
item is fetched before the item is booked, archived under its content address, and a file that
cannot be had fails its item with the right failure type (the other items unaffected, nothing
booked twice). Nothing of ours reaches the file host, and the signed query string reaches no log
line and no audit row.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import ClassVar
from urllib.parse import urlsplit

import pytest

from exports.adapters import ADAPTERS, AttachmentLimits
from exports.adapters.journal import JournalAdapter
from exports.models import AuditEntry, ExportItemRecord, JournalEntry
from exports.receipts.fetch import (
    FetchConfig,
    ReceiptFailure,
    file_refs,
    new_session,
    receipt_fetch,
)
from exports.receipts.files import receipts_storage
from exports.receipts.models import Receipt
from exports.services.start_flow import Outcome
from pleo_sandbox.data import file_chunks, file_content
from tests import secrets_registry
from tests.lifecycle_support import env  # noqa: F401 - the lifecycle tests' sandbox company

pytestmark = pytest.mark.django_db

# The signature of a pre-signed URL is its query string: in the sandbox, ``expires=…``.
SIGNED_QUERY = "expires="
PDF = "application/pdf"
HEADERS_SENT = {"host", "user-agent", "accept", "accept-encoding"}


@pytest.fixture
def rx(env, settings, receipts_archive):  # noqa: F811
    settings.RECEIPTS_MAX_ATTEMPTS = 2
    settings.RECEIPTS_BACKOFF_BASE = 0
    settings.RECEIPTS_READ_TIMEOUT = 0.3
    settings.RECEIPTS_MAX_BYTES = 200_000
    secrets_registry.register(SIGNED_QUERY)  # no log line of the test may carry it
    return env


def files_by_entry(env, job_id) -> dict[str, list[dict]]:  # noqa: F811
    """Per accounting entry: its files (``id``, ``type``, ``size``, ``path``), as Pleo declares."""
    out = {}
    for item in env.state.export_items(job_id):
        out[item["accountingEntryId"]] = [
            {
                "id": urlsplit(f["url"]).path.rsplit("/", 1)[1],
                "path": urlsplit(f["url"]).path,
                "type": f["type"],
                "size": f["size"],
            }
            for f in item["files"]
        ]
    return out


def job_with_files(env, n=4):  # noqa: F811
    """A job of ``n`` items; returns (job id, an entry with exactly one file, files by entry)."""
    job_id = env.job({"normal": n})
    files = files_by_entry(env, job_id)
    target = next(entry for entry, fs in files.items() if len(fs) == 1)
    return job_id, target, files


def file_requests(env, path=None):  # noqa: F811
    return [e for e in env.state.requests("GET") if e["path"].startswith(path or "/files/")]


def assert_no_signed_query_stored(env):  # noqa: F811
    for message in AuditEntry.objects.values_list("message", flat=True):
        assert SIGNED_QUERY not in message
    for record in ExportItemRecord.objects.all():
        assert SIGNED_QUERY not in record.failure_reason
    for row in Receipt.objects.values("source_host", "source_path", "storage_name"):
        assert all(SIGNED_QUERY not in value and "?" not in value for value in row.values())


def test_every_file_is_archived_before_its_item_is_booked_and_nothing_of_ours_is_sent(rx):
    job_id, _, files = job_with_files(rx)
    assert rx.run().outcome == Outcome.COMPLETED
    declared = [f for fs in files.values() for f in fs]
    assert len(declared) >= 3
    rows = {r.source_path: r for r in Receipt.objects.select_related("item_record")}
    assert set(rows) == {f["path"] for f in declared}
    storage = receipts_storage()
    for f in declared:
        row = rows[f["path"]]
        content = file_content(f["id"], f["type"], f["size"])
        assert row.sha256 == hashlib.sha256(content).hexdigest()
        assert (row.size, row.declared_size, row.content_type) == (f["size"], f["size"], f["type"])
        assert row.storage_name == f"{rx.company.pk}/{row.sha256}"
        with storage.open(row.storage_name, "rb") as handle:
            assert handle.read() == content
        assert row.source_host == "127.0.0.1"
        assert row.fetched_at <= row.item_record.booking_started_at
        assert str(row.item_record.accounting_entry_id) in files
    seen = file_requests(rx)
    assert len(seen) == len(declared)
    for request in seen:
        assert {name.lower() for name in request["headers"]} <= HEADERS_SENT
        assert request["identity"] is None
    assert_no_signed_query_stored(rx)


FAILING = [
    ("not_found", {}, "receipt_download_failure", "answered 404"),
    ("server_error", {"count": 5}, "receipt_download_failure", "answered 503"),
    ("stall", {"seconds": 0.6, "count": None}, "receipt_download_failure", "in time"),
    ("truncated", {"count": None}, "receipt_download_failure", "cut off"),
    ("size_mismatch", {}, "receipt_download_failure", "arrived (the file"),
    ("oversized", {"size": 300_000}, "receipt_file_size_limit_exceeded", "over the limit"),
    ("wrong_content", {}, "receipt_conversion_failure", "none of the accepted types"),
    ("redirect_http", {}, "receipt_download_failure", "only https is fetched"),
    ("redirect_loop", {}, "receipt_download_failure", "more than 3 times"),
]


def test_each_file_that_cannot_be_had_fails_only_its_item(rx):
    """One job, one file an item, every fault on its own item: one run decides them all."""
    job_id = rx.job(len(FAILING) + 2, receipts={"count": 1, "size": 20_000, "type": PDF})
    files = files_by_entry(rx, job_id)
    targets = dict(zip(files, FAILING, strict=False))  # the last two items stay clean
    for entry, (kind, params, *_) in targets.items():
        rx.state.add_file_fault(files[entry][0]["id"], kind, **params)
    assert rx.run().outcome == Outcome.COMPLETED_WITH_ERRORS
    items = rx.items(job_id)
    port = urlsplit(rx.sandbox.url).port
    for entry, (kind, _, failure_type, said) in targets.items():
        item = items[entry]
        assert (item["status"], item["failureReasonType"]) == ("failed", failure_type), kind
        assert said in item["failureReason"], kind
        assert f"file 1 (127.0.0.1:{port}{files[entry][0]['path']})" in item["failureReason"]
    clean = [entry for entry in items if entry not in targets]
    assert len(clean) == 2
    assert all(items[entry]["status"] == "successful" for entry in clean)
    booked = set(JournalEntry.objects.values_list("accounting_entry_id", flat=True))
    assert booked == {uuid.UUID(entry) for entry in clean}
    assert sorted(rx.put_ids(job_id)) == sorted(items)  # each item reported once
    archived = set(Receipt.objects.values_list("accounting_entry_id", flat=True))
    assert archived == {uuid.UUID(entry) for entry in clean}
    assert_no_signed_query_stored(rx)


@pytest.mark.parametrize(
    ("kind", "params", "requests_made"),
    [
        ("server_error", {"count": 1}, 2),
        ("truncated", {"count": 1}, 2),
        ("redirect_loop", {"count": 2}, 3),
    ],
)
def test_a_passing_fault_is_retried_or_followed_and_the_item_booked(
    rx, kind, params, requests_made
):
    job_id, target, files = job_with_files(rx)
    bad = files[target][0]
    rx.state.add_file_fault(bad["id"], kind, **params)
    assert rx.run().outcome == Outcome.COMPLETED
    assert len(file_requests(rx, bad["path"])) == requests_made
    row = Receipt.objects.get(source_path=bad["path"])
    assert (
        row.sha256 == hashlib.sha256(file_content(bad["id"], bad["type"], bad["size"])).hexdigest()
    )


def test_a_declared_size_over_the_limit_fails_without_a_download(rx):
    job_id, target, files = job_with_files(rx)
    bad = files[target][0]
    rx.state.set_file(bad["id"], size=250_000)
    assert rx.run().outcome == Outcome.COMPLETED_WITH_ERRORS
    item = rx.items(job_id)[target]
    assert item["failureReasonType"] == "receipt_file_size_limit_exceeded"
    assert "declared as 250000 bytes" in item["failureReason"]
    assert file_requests(rx, bad["path"]) == []


def test_accepted_content_under_another_declared_type_is_kept_as_what_it_is_and_audited(rx):
    job_id, target, files = job_with_files(rx)
    bad = files[target][0]
    rx.state.set_file(bad["id"], type="image/jpeg")
    rx.state.add_file_fault(bad["id"], "content", content="png")
    assert rx.run().outcome == Outcome.COMPLETED
    row = Receipt.objects.get(source_path=bad["path"])
    assert (row.declared_type, row.content_type) == ("image/jpeg", "image/png")
    note = AuditEntry.objects.get(step="receipt_note")
    assert note.outcome == AuditEntry.Outcome.WARNING
    assert "declared as 'image/jpeg' but its content is png" in note.message
    assert bad["path"] in note.message


def test_with_receipts_not_required_the_item_is_booked_without_the_failed_file(rx, settings):
    settings.RECEIPTS_REQUIRED = False
    job_id, target, files = job_with_files(rx)
    bad = files[target][0]
    rx.state.add_file_fault(bad["id"], "wrong_content")
    assert rx.run().outcome == Outcome.COMPLETED
    assert rx.items(job_id)[target]["status"] == "successful"
    assert not Receipt.objects.filter(source_path=bad["path"]).exists()
    note = AuditEntry.objects.get(step="receipt_note")
    assert target in note.message and bad["path"] in note.message
    assert "Booked without it (RECEIPTS_REQUIRED is off)" in note.message
    assert_no_signed_query_stored(rx)


def test_a_file_exported_twice_is_stored_once(rx):
    first = rx.job({"normal": 3})
    entries = list(files_by_entry(rx, first))
    assert rx.run().outcome == Outcome.COMPLETED
    rx.state.create_job(rx.remote.id, ["normal"] * 3, notify=False, accounting_entry_ids=entries)
    assert rx.run().outcome == Outcome.COMPLETED
    rows = list(Receipt.objects.all())
    distinct = {row.sha256 for row in rows}
    assert len(rows) == 2 * len(distinct) > 0
    stored = receipts_storage().listdir(str(rx.company.pk))[1]
    assert sorted(stored) == sorted(distinct)


def test_files_that_cannot_be_fetched_before_the_deadline_are_not_booked(rx):
    # 60 s to expiry is less than the guard's safety margin: no download may start.
    job_id = rx.job({"normal": 4}, expires_in=60)
    files = files_by_entry(rx, job_id)
    rx.run()
    items = rx.items(job_id)
    for entry, fs in files.items():
        if fs:
            assert items[entry]["failureReasonType"] == "receipt_download_failure"
            assert "could not be fetched before" in items[entry]["failureReason"]
        else:
            assert items[entry]["status"] == "successful"
    assert file_requests(rx) == []


class SmallAttachmentsJournal(JournalAdapter):
    """The journal, taking attachments of at most 5,000 bytes; remembers what it was given."""

    name = "small_attachments"
    attachment_limits = AttachmentLimits(max_bytes=5_000)
    given: ClassVar[dict[str, list[bytes]]] = {}

    def book(self, request):
        files = []
        for receipt in request.receipts:
            with receipt.open() as handle:
                files.append(handle.read())
        self.given[str(request.accounting_entry_id)] = files
        return super().book(request)


@pytest.mark.parametrize("required", [True, False])
def test_the_adapter_gets_the_receipts_within_its_attachment_limits(
    rx, settings, monkeypatch, required
):
    settings.RECEIPTS_REQUIRED = required
    monkeypatch.setitem(ADAPTERS, SmallAttachmentsJournal.name, SmallAttachmentsJournal)
    monkeypatch.setattr(SmallAttachmentsJournal, "given", {})
    rx.use_adapter(SmallAttachmentsJournal.name)
    job_id = rx.job({"normal": 6})
    files = files_by_entry(rx, job_id)
    rx.run()
    items = rx.items(job_id)
    given = SmallAttachmentsJournal.given
    assert any(len(fs) for fs in files.values())
    for entry, fs in files.items():
        small = [file_content(f["id"], f["type"], f["size"]) for f in fs if f["size"] <= 5_000]
        if required and len(small) < len(fs):
            assert items[entry]["failureReasonType"] == "receipt_file_size_limit_exceeded"
            assert entry not in given
        else:
            assert items[entry]["status"] == "successful"
            assert given[entry] == small
    notes = AuditEntry.objects.filter(step="receipt_note").count()
    too_big = sum(1 for fs in files.values() for f in fs if f["size"] > 5_000)
    assert too_big > 0
    assert notes == (0 if required else too_big)


@pytest.mark.slow
def test_a_large_file_and_a_file_just_over_the_limit(rx, settings):
    settings.RECEIPTS_MAX_BYTES = 30 * 1024 * 1024
    settings.RECEIPTS_READ_TIMEOUT = 10
    job_id, target, files = job_with_files(rx)
    big = files[target][0]
    rx.state.set_file(big["id"], size=settings.RECEIPTS_MAX_BYTES)
    other = next(f for entry, fs in files.items() if entry != target for f in fs)
    rx.state.add_file_fault(other["id"], "oversized", size=settings.RECEIPTS_MAX_BYTES + 1)
    assert rx.run().outcome == Outcome.COMPLETED_WITH_ERRORS
    row = Receipt.objects.get(source_path=big["path"])
    expected = hashlib.sha256()
    for piece in file_chunks(big["id"], big["type"], settings.RECEIPTS_MAX_BYTES):
        expected.update(piece)
    assert (row.size, row.sha256) == (settings.RECEIPTS_MAX_BYTES, expected.hexdigest())
    failed = [i for i in rx.items(job_id).values() if i["status"] == "failed"]
    assert [i["failureReasonType"] for i in failed] == ["receipt_file_size_limit_exceeded"]


@pytest.mark.slow
def test_many_items_with_files_are_all_archived_once_each(rx, settings):
    settings.RECEIPTS_DOWNLOAD_CONCURRENCY = 3
    job_id = rx.job({"normal": 120})
    files = files_by_entry(rx, job_id)
    assert rx.run().outcome == Outcome.COMPLETED
    declared = [f["path"] for fs in files.values() for f in fs]
    assert len(declared) > 100
    assert sorted(Receipt.objects.values_list("source_path", flat=True)) == sorted(declared)
    assert len(file_requests(rx)) == len(declared)  # each fetched once
    assert JournalEntry.objects.count() == 120


class NoAttachmentsJournal(JournalAdapter):
    """The journal as an accounting system that takes no attachments (the interface default)."""

    name = "no_attachments"
    attachment_limits = AttachmentLimits(max_count=0)


def test_an_adapter_that_takes_no_attachments_books_and_the_receipts_stay_archived(rx, monkeypatch):
    monkeypatch.setitem(ADAPTERS, NoAttachmentsJournal.name, NoAttachmentsJournal)
    rx.use_adapter(NoAttachmentsJournal.name)
    job_id, _, files = job_with_files(rx)
    assert rx.run().outcome == Outcome.COMPLETED
    assert Receipt.objects.count() == sum(len(fs) for fs in files.values())
    assert AuditEntry.objects.filter(step="receipts_archived_only").count() == 1


def test_a_url_past_its_24_hours_is_refused_by_the_file_host(rx):
    job_id = rx.job({"normal": 4})
    item = next(i for i in rx.state.export_items(job_id) if i["files"])
    ref = file_refs(item)[0]
    config = FetchConfig.from_settings()
    assert fetch_one(ref, config).size == item["files"][0]["size"]
    rx.state.advance_clock(24 * 3600)
    with pytest.raises(ReceiptFailure) as caught:
        fetch_one(ref, config)
    assert caught.value.failure_type == "receipt_download_failure"
    assert "answered 403 (the link may have expired" in caught.value.message


def fetch_one(ref, config):
    return receipt_fetch(ref=ref, company_pk=1, config=config, session=new_session())


def test_an_archive_that_cannot_be_written_pauses_the_job_and_the_next_run_books_once(
    rx, monkeypatch
):
    from exports.receipts import fetch

    job_id = rx.job(4, receipts={"count": 1, "size": 5_000, "type": PDF})
    real = fetch.receipt_store

    def disk_full(**kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fetch, "receipt_store", disk_full)
    assert rx.run().outcome == Outcome.STARTED
    assert JournalEntry.objects.count() == 0
    paused = AuditEntry.objects.filter(step="paused").last()
    assert "receipt archive could not be written (OSError)" in paused.message
    monkeypatch.setattr(fetch, "receipt_store", real)
    assert rx.run().outcome == Outcome.COMPLETED
    assert JournalEntry.objects.count() == 4
    assert sorted(rx.put_ids(job_id)) == sorted(rx.items(job_id))
    assert Receipt.objects.count() == 4
