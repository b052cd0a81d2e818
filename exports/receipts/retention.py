"""Retention of the receipt archive, for ``manage.py prune_history``.

* Receipts are kept unless the command is given ``--receipts-older-than DAYS``: then the index
  rows fetched before that are deleted, and a stored file is deleted only when no row refers to
  it any more (a file is content-addressed and may be shared by a newer export).
* The audit entries of a job whose receipts are kept are kept too, with the entries of its runs
  that named no job, whatever their age: the job's audit pack needs them.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q

from exports.models import AuditEntry, Receipt
from exports.receipts.files import receipts_storage


@dataclass(frozen=True)
class ReceiptsPruned:
    rows: int
    files: int


def receipts_prune(*, fetched_before) -> ReceiptsPruned:
    """Delete the receipts fetched before ``fetched_before``, then their files no row refers to."""
    with transaction.atomic():
        old = Receipt.objects.filter(fetched_at__lt=fetched_before)
        names = set(old.values_list("storage_name", flat=True))
        rows, _ = old.delete()
    still_referred = set(
        Receipt.objects.filter(storage_name__in=names).values_list("storage_name", flat=True)
    )
    storage = receipts_storage()
    files = 0
    for name in sorted(names - still_referred):
        if storage.exists(name):
            storage.delete(name)
            files += 1
    return ReceiptsPruned(rows=rows, files=files)


def audit_kept_for_receipts() -> Q:
    """The audit entries no age removes: those of jobs with receipts, and of their runs."""
    jobs = Receipt.objects.values("export_job_id")
    runs = AuditEntry.objects.filter(export_job__in=jobs, run_id__isnull=False).values("run_id")
    return Q(export_job__in=jobs) | Q(run_id__in=runs)
