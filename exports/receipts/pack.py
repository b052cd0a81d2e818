"""A job's audit pack: one ZIP that shows what happened to an export job without asking Pleo.

Entries, in this order (sorted by name):

* ``journal.csv``: the journal entries booked for the job's items, as the journal's "Download
  CSV" writes them (``exports.selectors.journal_csv``; header only for another adapter);
* ``manifest.json``: the company; the job as Pleo last reported it (``last_payload``) with our
  facts about it; every item as stored at booking time (redacted:
  ``exports.adapters.item_snapshot``) with what we booked (state, result, external id and URL)
  and its receipts (SHA-256, size, types, the file's name in the pack, whether the archive still
  holds it and its content still has that hash); the audit trail of every run that touched the
  job (its entries, and the run's entries that named no job); the SHA-256 of ``journal.csv``;
* ``receipts/<sha256>.<ext>``: each archived file once.

Byte-for-byte reproducible: nothing in it depends on when or by whom it was made. Entries are
sorted, every entry has the same timestamp (1980-01-01 00:00:00, the ZIP epoch) and mode
(``-rw-r--r--``), JSON keys are sorted, lists are in a fixed order (items by accounting entry id,
receipts by position, audit entries by time and id). Two packs of an unchanged job are equal.

Called by the job's admin page (``exports.admin.receipts``) and ``manage.py export_audit_pack``.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, BinaryIO
from uuid import UUID

from django.db.models import Q

from exports.models import AuditEntry, ExportItemRecord, ExportJob, JournalEntry
from exports.receipts.files import receipt_open, receipt_pack_name
from exports.selectors.journal_csv import journal_csv

PACK_FORMAT = "pleo-export-bridge audit pack"
PACK_VERSION = 1
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # a regular file, rw-r--r--
CHUNK = 64 * 1024


@dataclass(frozen=True)
class PackSummary:
    items: int
    receipts: int
    missing_receipts: int
    audit_entries: int


def audit_pack_name(job: ExportJob) -> str:
    return f"audit-pack-{job.pleo_job_id}.zip"


def _value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def _fields(obj, names: tuple[str, ...]) -> dict:
    return {name: _value(getattr(obj, name)) for name in names}


JOB_FIELDS = (
    "pleo_job_id",
    "status",
    "created_at",
    "started_at",
    "last_updated_at",
    "completed_at",
    "expired_at",
    "number_of_items",
    "failure_reason_type",
    "failure_reason",
    "payload_received_at",
    "claim",
    "claimed_at",
    "processing_state",
    "expired_detected_at",
)
ITEM_FIELDS = (
    "accounting_entry_id",
    "adapter",
    "state",
    "result",
    "external_id",
    "external_url",
    "exported_at",
    "failure_reason_type",
    "failure_reason",
    "booking_started_at",
    "reported_at",
)
RECEIPT_FIELDS = (
    "position",
    "sha256",
    "size",
    "content_type",
    "declared_type",
    "declared_size",
    "source_host",
    "source_path",
    "fetched_at",
)
AUDIT_FIELDS = (
    "created_at",
    "run_id",
    "step",
    "outcome",
    "message",
    "trigger",
    "http_method",
    "http_path",
    "http_status",
    "worker",
)


def _file_check(receipt) -> bool | None:
    """True when the archive holds the file with its SHA-256; False when its content differs;
    None when it is missing."""
    handle = receipt_open(receipt)
    if handle is None:
        return None
    digest = hashlib.sha256()
    with handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest() == receipt.sha256


def job_audit_entries(job: ExportJob):
    """The job's audit entries and those of its runs that named no job, oldest first."""
    runs = (
        AuditEntry.objects.filter(export_job=job, run_id__isnull=False).values("run_id").distinct()
    )
    return AuditEntry.objects.filter(
        Q(export_job=job) | Q(export_job__isnull=True, company=job.company_id, run_id__in=runs)
    ).order_by("created_at", "id")


def job_journal_entries(job: ExportJob, entry_ids):
    """The journal entries booked for the job: its own, and earlier ones it reported again."""
    return JournalEntry.objects.filter(
        Q(export_job=job) | Q(company=job.company_id, accounting_entry_id__in=entry_ids)
    )


def _manifest(job: ExportJob, records, audit_entries, csv_bytes: bytes, files: dict) -> dict:
    items = []
    for record in records:
        receipts = []
        for receipt in record.receipts.all():
            check = files[receipt.sha256][1]
            receipts.append(
                {
                    **_fields(receipt, RECEIPT_FIELDS),
                    "file": receipt_pack_name(files[receipt.sha256][0]) if check else None,
                    "in_archive": check is not None,
                    "hash_verified": check is True,
                }
            )
        items.append(
            {
                **_fields(record, ITEM_FIELDS),
                "as_received": record.item_snapshot,
                "receipts": receipts,
            }
        )
    return {
        "pack": {"format": PACK_FORMAT, "version": PACK_VERSION},
        "company": {
            "name": job.company.name,
            "pleo_company_id": str(job.company.pleo_company_id),
        },
        "job": {**_fields(job, JOB_FIELDS), "as_last_reported_by_pleo": job.last_payload},
        "items": items,
        "audit": [_fields(entry, AUDIT_FIELDS) for entry in audit_entries],
        "journal_csv": {
            "file": "journal.csv",
            "sha256": hashlib.sha256(csv_bytes).hexdigest(),
            "size": len(csv_bytes),
        },
    }


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, so the mode below is read
    info.external_attr = FILE_MODE << 16
    return info


def audit_pack_write(*, job: ExportJob, out: BinaryIO) -> PackSummary:
    """Write ``job``'s audit pack (see the module docstring) into the binary stream ``out``."""
    records = list(
        ExportItemRecord.objects.filter(export_job=job)
        .prefetch_related("receipts")
        .order_by("accounting_entry_id", "pk")
    )
    entries = job_journal_entries(job, [record.accounting_entry_id for record in records])
    csv_bytes = journal_csv(entries=entries)
    audit_entries = list(job_audit_entries(job))
    # SHA-256 -> (the first receipt of that file, its check): each file is packed once, and
    # only when the archive still holds it with that hash.
    files: dict[str, tuple] = {}
    for record in records:
        for receipt in record.receipts.all():
            if receipt.sha256 not in files:
                files[receipt.sha256] = (receipt, _file_check(receipt))
    manifest = _manifest(job, records, audit_entries, csv_bytes, files)
    manifest_bytes = (
        json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    ).encode("utf-8")

    held = {receipt_pack_name(r): r for r, check in files.values() if check}
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(_entry("journal.csv"), csv_bytes)
        archive.writestr(_entry("manifest.json"), manifest_bytes)
        for name, receipt in sorted(held.items()):
            handle = receipt_open(receipt)
            if handle is None:  # gone since it was checked: the manifest already said so
                continue
            with handle, archive.open(_entry(name), "w") as target:
                shutil.copyfileobj(handle, target, CHUNK)
    return PackSummary(
        items=len(records),
        receipts=len(held),
        missing_receipts=len(files) - len(held),
        audit_entries=len(audit_entries),
    )


def audit_pack_bytes(*, job: ExportJob) -> bytes:
    """The pack in memory (tests, small jobs); the admin and the command stream to a file."""
    out = io.BytesIO()
    audit_pack_write(job=job, out=out)
    return out.getvalue()
