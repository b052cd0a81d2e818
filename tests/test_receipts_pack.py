"""Receipts kept with their bookings: the stored item snapshot (redacted as the journal redacts),
receipts on the job's items and journal entries in the admin with a checked, streamed download,
the job's audit pack (contents, reproducibility, the command's exit codes), and the retention
rules of ``prune_history`` for receipts and the audit rows they keep."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import uuid
import zipfile

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from exports import clock
from exports.adapters.item_snapshot import item_snapshot
from exports.models import AuditEntry, ExportItemRecord, ExportJob, JournalEntry, Receipt
from exports.receipts.files import receipts_storage
from exports.receipts.pack import audit_pack_bytes
from exports.selectors.journal_csv import journal_csv
from tests.factories import make_audit, make_company, make_job, make_receipt, make_staff

pytestmark = pytest.mark.django_db

SIGNED = (
    "https://files.pleo.test/receipts/r1.pdf?X-Amz-Signature=s3cr3t-signature&X-Amz-Expires=86400"
)
IBAN = "DK5000400440116243"


def pleo_item(entry_id) -> dict:
    """An ExportItemV3 with every kind of field the redaction knows."""
    money = {"inSupplierCurrency": {"currency": "EUR", "value": 1678}}
    money["inWalletCurrency"] = {"currency": "DKK", "value": 12500}
    return {
        "_links": {"web": {"exportItem": "https://app.pleo.test/export/item/1"}},
        "accountingEntryId": str(entry_id),
        "accountingEntryLines": [
            {"netAmount": money, "account": {"code": "4060", "name": "Meals"}, "tax": None}
        ],
        "additionalInformation": {
            "reconciliationId": "B12345678",
            "attendees": ["Ada Lovelace", "Alan Turing"],
            "invoiceInformation": {
                "invoiceNumber": "INV-7",
                "supplierBankAccount": {"iban": IBAN, "bic": "DABADKKK"},
            },
            "reconciledEntries": None,
        },
        "amount": money,
        "bookkeeping": {"method": "none"},
        "companyId": str(uuid.uuid4()),
        "contraAccount": {"code": "5820", "name": "Card"},
        "date": "2026-11-30T12:00:00Z",
        "files": [{"url": SIGNED, "type": "application/pdf", "size": 31}],
        "note": "Team lunch",
        "servicePeriod": None,
        "subType": None,
        "supplier": {"name": "Café Ørsted", "country": "DK", "taxIdentifier": "DK12345678"},
        "team": {"id": "t1", "name": "Sales", "code": None},
        "type": "card_purchase",
        "user": {"id": "u1", "name": "Grace Hopper", "code": "E-17"},
        "vendor": None,
        "somethingNew": {"email": "grace@example.test"},
    }


@pytest.fixture(autouse=True)
def receipts_dir(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "receipts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "receipts")},
        },
    }
    return tmp_path / "receipts"


def booked_job(company=None, *, items=2, receipts=True):
    """A completed job of ``company`` with ``items`` booked items, their journal entries, one
    receipt each, the same file (the first item a photo too) and a run's audit."""
    company = company or make_company(name="Nordlys ApS")
    job = make_job(
        company,
        status=ExportJob.Status.COMPLETED,
        last_payload={"id": "job", "status": "completed", "numberOfItems": items},
    )
    run_id = uuid.uuid4()
    make_audit(company, "selected", "run start", run_id=run_id)
    make_audit(company, "completed", "done", run_id=run_id, export_job=job)
    for number in range(items):
        entry_id = uuid.uuid4()
        entry = JournalEntry.objects.create(
            company=company,
            export_job=job,
            accounting_entry_id=entry_id,
            idempotency_key=uuid.uuid4().hex,
            date=clock.now().date(),
            currency="DKK",
            amount=12500,
            description=f"Lunch {number}",
            created_at=clock.now(),
        )
        entry.lines.create(position=1, kind="expense", account_code="4060", debit=12500)
        entry.lines.create(position=2, kind="contra", account_code="5820", credit=12500)
        record = ExportItemRecord.objects.create(
            export_job=job,
            accounting_entry_id=entry_id,
            idempotency_key=uuid.uuid4().hex,
            adapter="journal",
            state=ExportItemRecord.State.REPORTED,
            result=ExportItemRecord.Result.SUCCESSFUL,
            external_id=entry.number,
            item_snapshot=item_snapshot(pleo_item(entry_id)),
        )
        if receipts:
            make_receipt(record, b"%PDF-1.4 shared receipt", position=0)
        if receipts and number == 0:
            make_receipt(record, b"\x89PNG photo", position=1, content_type="image/png")
    return job


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


# --- the stored item snapshot -----------------------------------------------------------------


def test_the_snapshot_keeps_what_was_booked_and_drops_what_the_journal_never_copies():
    item = pleo_item(uuid.uuid4())
    snapshot = item_snapshot(item)
    text = json.dumps(snapshot)
    for kept in ("amount", "accountingEntryLines", "supplier", "team", "note", "_links", "date"):
        assert snapshot[kept] == item[kept]
    assert snapshot["files"] == [
        {
            "type": "application/pdf",
            "size": 31,
            "host": "files.pleo.test",
            "path": "/receipts/r1.pdf",
        }
    ]
    assert snapshot["additionalInformation"] == {
        "reconciliationId": "B12345678",
        "invoiceInformation": {"invoiceNumber": "INV-7"},
        "reconciledEntries": None,
    }
    for gone in ("Signature", IBAN, "DABADKKK", "Ada Lovelace", "Grace Hopper", "grace@"):
        assert gone not in text
    assert snapshot["_redacted"] == [
        "additionalInformation.attendees",
        "additionalInformation.invoiceInformation.supplierBankAccount",
        "files[].url",
        "somethingNew",
        "user",
    ]
    assert item["files"][0]["url"] == SIGNED  # the item itself is left as it was


# --- receipts in the admin ---------------------------------------------------------------------


def staff(*codenames, superuser=False) -> User:
    if superuser:
        return User.objects.create_superuser("root", "root@example.com", None)
    return make_staff("clerk", *codenames)


def test_the_job_page_and_the_entry_page_show_receipts_with_a_download_link(client):
    job = booked_job()
    client.force_login(staff(superuser=True))
    page = client.get(reverse("admin:exports_exportjob_change", args=[job.pk])).content.decode()
    png = Receipt.objects.get(content_type="image/png")
    assert png.sha256 in page and "image/png" in page and "(10 bytes)" in page
    assert reverse("admin:exports_receipt_download", args=[png.pk]) in page
    assert reverse("admin:exports_exportjob_audit_pack", args=[job.pk]) in page
    entry = JournalEntry.objects.get(accounting_entry_id=png.accounting_entry_id)
    page = client.get(reverse("admin:exports_journalentry_change", args=[entry.pk])).content
    assert page.decode().count('class="receipt-download"') == 2


def test_without_the_permissions_receipts_show_but_neither_download_nor_pack_is_offered(client):
    job = booked_job()
    client.force_login(staff("view_exportjob", "view_exportitemrecord", "view_all_companies"))
    page = client.get(reverse("admin:exports_exportjob_change", args=[job.pk])).content.decode()
    assert Receipt.objects.first().sha256 in page
    assert "receipt-download" not in page and "audit-pack" not in page
    receipt = Receipt.objects.first()
    assert (
        client.get(reverse("admin:exports_receipt_download", args=[receipt.pk])).status_code == 403
    )


def test_a_download_streams_the_file_as_an_attachment_the_browser_does_not_sniff(
    client, receipts_dir
):
    booked_job()
    client.force_login(staff(superuser=True))
    receipt = Receipt.objects.get(content_type="image/png")
    response = client.get(reverse("admin:exports_receipt_download", args=[receipt.pk]))
    assert response.streaming and b"".join(response.streaming_content) == b"\x89PNG photo"
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert (
        response["Content-Disposition"]
        == f'attachment; filename="receipt-{receipt.sha256[:16]}.png"'
    )
    # A type we do not serve as itself goes as bytes; a file gone from the archive is a 404.
    Receipt.objects.filter(pk=receipt.pk).update(content_type="text/html")
    response = client.get(reverse("admin:exports_receipt_download", args=[receipt.pk]))
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].endswith('.bin"')
    receipts_storage().delete(receipt.storage_name)
    assert (
        client.get(reverse("admin:exports_receipt_download", args=[receipt.pk])).status_code == 404
    )


# --- the audit pack ----------------------------------------------------------------------------


def test_the_pack_holds_manifest_receipts_and_journal_csv():
    job = booked_job()
    files = unzip(audit_pack_bytes(job=job))
    shared = hashlib.sha256(b"%PDF-1.4 shared receipt").hexdigest()
    photo = hashlib.sha256(b"\x89PNG photo").hexdigest()
    assert list(files) == [
        "journal.csv",
        "manifest.json",
        *sorted([f"receipts/{shared}.pdf", f"receipts/{photo}.png"]),
    ]
    assert files[f"receipts/{photo}.png"] == b"\x89PNG photo"
    assert files["journal.csv"] == journal_csv(entries=JournalEntry.objects.filter(export_job=job))
    manifest = json.loads(files["manifest.json"])
    assert manifest["job"]["pleo_job_id"] == str(job.pleo_job_id)
    assert manifest["job"]["as_last_reported_by_pleo"] == job.last_payload
    assert manifest["company"]["name"] == "Nordlys ApS"
    assert [item["accounting_entry_id"] for item in manifest["items"]] == sorted(
        str(r.accounting_entry_id) for r in job.item_records.all()
    )
    for item in manifest["items"]:
        record = job.item_records.get(accounting_entry_id=item["accounting_entry_id"])
        assert item["external_id"] == record.external_id and item["result"] == "successful"
        assert item["as_received"] == record.item_snapshot
        for receipt in item["receipts"]:
            assert (receipt["in_archive"], receipt["hash_verified"]) == (True, True)
            assert files[receipt["file"]] and len(files[receipt["file"]]) == receipt["size"]
            assert hashlib.sha256(files[receipt["file"]]).hexdigest() == receipt["sha256"]
    assert [entry["step"] for entry in manifest["audit"]] == ["selected", "completed"]
    assert manifest["journal_csv"]["sha256"] == hashlib.sha256(files["journal.csv"]).hexdigest()
    everything = b"".join(files.values()).decode(errors="replace")
    assert "Signature" not in everything and IBAN not in everything and "Grace" not in everything


def test_two_packs_of_a_job_are_byte_for_byte_equal_with_fixed_times_modes_and_keys():
    job = booked_job()
    first = audit_pack_bytes(job=job)
    clock.advance(3 * 86400 + 17)
    assert audit_pack_bytes(job=ExportJob.objects.get(pk=job.pk)) == first
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        infos = archive.infolist()
        manifest = archive.read("manifest.json").decode()
    assert [info.filename for info in infos] == sorted(info.filename for info in infos)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {stat.filemode(info.external_attr >> 16) for info in infos} == {"-rw-r--r--"}
    assert (
        manifest
        == json.dumps(json.loads(manifest), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )


def test_a_receipt_missing_from_the_archive_is_named_in_the_manifest_not_packed():
    job = booked_job()
    photo = Receipt.objects.get(content_type="image/png")
    receipts_storage().delete(photo.storage_name)
    files = unzip(audit_pack_bytes(job=job))
    assert not any(photo.sha256 in name for name in files)
    listed = [r for i in json.loads(files["manifest.json"])["items"] for r in i["receipts"]]
    missing = next(r for r in listed if r["sha256"] == photo.sha256)
    assert (missing["file"], missing["in_archive"], missing["hash_verified"]) == (
        None,
        False,
        False,
    )


def test_the_command_writes_the_same_pack_and_exits_2_for_an_unknown_job(tmp_path, capsys):
    job = booked_job()
    target = tmp_path / "pack.zip"
    call_command("export_audit_pack", str(job.pleo_job_id), "--output", str(target))
    assert target.read_bytes() == audit_pack_bytes(job=job)
    assert "2 items, 2 receipt files" in capsys.readouterr().out
    for unknown in (str(uuid.uuid4()), "not-a-uuid"):
        with pytest.raises(CommandError) as raised:
            call_command("export_audit_pack", unknown, "--output", str(tmp_path / "other.zip"))
        assert raised.value.returncode == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pack.zip", "receipts"]


def test_the_admin_pack_is_the_commands_pack(client):
    job = booked_job()
    client.force_login(staff(superuser=True))
    response = client.get(reverse("admin:exports_exportjob_audit_pack", args=[job.pk]))
    assert response["Content-Type"] == "application/zip"
    assert (
        response["Content-Disposition"]
        == f'attachment; filename="audit-pack-{job.pleo_job_id}.zip"'
    )
    assert b"".join(response.streaming_content) == audit_pack_bytes(job=job)


# --- retention ---------------------------------------------------------------------------------


def old_history(days=200):
    """A job with receipts and one without, all of it ``days`` old; the clock back at now."""
    clock.advance(-days * 86400)
    kept, bare = booked_job(), booked_job(make_company(name="Bare ApS"), items=1, receipts=False)
    clock.reset()
    return kept, bare


def test_prune_history_keeps_every_receipt_and_its_jobs_audit_without_the_option(receipts_dir):
    kept, bare = old_history()
    call_command("prune_history", stdout=io.StringIO())
    assert Receipt.objects.count() == 3
    assert AuditEntry.objects.filter(export_job=kept).count() == 1
    # The run's entry that named no job stays with the job's; the other job's audit goes.
    assert AuditEntry.objects.filter(company=kept.company, export_job=None).count() == 1
    assert not AuditEntry.objects.filter(company=bare.company).exists()
    assert len(list(receipts_dir.rglob("*"))) == 3  # one company directory, two files


def test_receipts_older_than_deletes_old_rows_and_only_files_no_row_refers_to(receipts_dir):
    kept, _ = old_history()
    newer = booked_job(kept.company, items=1, receipts=False)
    make_receipt(newer.item_records.get(), b"%PDF-1.4 shared receipt")  # the same file, today
    out = io.StringIO()
    call_command("prune_history", "--receipts-older-than", "30", stdout=out)
    assert list(Receipt.objects.values_list("export_job", flat=True)) == [newer.pk]
    shared = Receipt.objects.get(export_job=newer)
    assert receipts_storage().exists(shared.storage_name)  # still referred to by the newer row
    photo = hashlib.sha256(b"\x89PNG photo").hexdigest()
    assert not receipts_storage().exists(f"{kept.company_id}/{photo}")
    assert "Pruned 3 receipts" in out.getvalue() and "1 stored files" in out.getvalue()
    # The old job kept no receipt: its audit went with the rest of its age.
    assert not AuditEntry.objects.filter(export_job=kept).exists()


def test_receipts_older_than_keeps_recent_receipts_and_their_old_jobs_audit(receipts_dir):
    kept, _ = old_history(days=60)
    Receipt.objects.update(fetched_at=clock.now())  # fetched again recently
    call_command(
        "prune_history", "--days", "30", "--receipts-older-than", "30", stdout=io.StringIO()
    )
    assert Receipt.objects.count() == 3
    assert AuditEntry.objects.filter(export_job=kept).count() == 1


def test_receipts_older_than_must_be_at_least_a_day():
    with pytest.raises(CommandError) as raised:
        call_command("prune_history", "--receipts-older-than", "0")
    assert raised.value.returncode == 2
