"""The export lifecycle's receipts: fetch the files of the items about to be booked, before they
are booked (``exports.receipts``).

A mixin of the lifecycle's ``_Carrier``. While booking, the first item whose files are not fetched
yet fetches them for itself and the next items to book (a chunk of ``CHUNK_PER_THREAD`` per
download thread); the next chunk's downloads then run in a background thread while this chunk is
booked (downloads only: the ``Receipt`` rows are written by the run's own thread, under its
lease). So the lease is renewed, early reports are sent and the expiry guard judges between
chunks, and the time a chunk waited for counts in the pace of its first item. Downloads stop
at the job's deadline less the guard's safety margin; an item whose files could not be tried in
time is reported failed ("export it again"), never booked without them.

Per item (:class:`~exports.receipts.services.ItemReceipts`): a failure blocks the booking (the
item is failed with the file's failure type), notes (a type other than declared, a file left out
with ``RECEIPTS_REQUIRED`` off) go to the audit table, and the archived ``Receipt`` rows become the
``BookingRequest.receipts`` (``ReceiptFile``, bytes through ``open()``), judged first against the
adapter's ``attachment_limits``: a file over them fails the item (its limit's failure type) or,
with ``RECEIPTS_REQUIRED`` off, is left out and audited. An adapter that takes no attachments at
all (``max_count=0``, the interface's default) gets none: its items are booked as before and the
receipts stay in the archive (audited once a run).
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings

from exports import pleo
from exports.adapters import BookingResult, ReceiptFile
from exports.models import AuditEntry, AuditStep, ExportItemRecord
from exports.receipts.fetch import FetchConfig, file_refs
from exports.receipts.files import receipt_adapter_file
from exports.receipts.services import ItemReceipts, receipts_download, receipts_index
from exports.services.expiry_guard import FINISH_MARGIN_SHARE
from exports.services.leases import LeaseLost
from exports.services.lifecycle_common import Pause
from exports.timestamps import utc_text

logger = logging.getLogger("exports.services.lifecycle")

CHUNK_PER_THREAD = 4
_TO_BOOK = (ExportItemRecord.State.PENDING, ExportItemRecord.State.BOOKING)


class ReceiptFetching:
    # Per record pk: the receipts fetched for an item, until it is booked (set up by the carrier).
    fetched_receipts: dict[int, ItemReceipts]
    # The next chunk's downloads, running in the background: (chunk, future).
    receipts_ahead: tuple[list, Future] | None = None
    _receipts_pool: ThreadPoolExecutor | None = None
    # The download threads, kept for the run (RECEIPTS_DOWNLOAD_CONCURRENCY of them).
    _download_pool: ThreadPoolExecutor | None = None
    archived_only_noted = False

    def receipts_ready(
        self,
        entry_id: uuid.UUID,
        ordered: list[pleo.ExportJobItem],
        records: dict[uuid.UUID, ExportItemRecord],
        export_items: dict[uuid.UUID, pleo.ExportItem],
    ) -> None:
        """Make sure the item ``entry_id`` has its files fetched (with the next items' to book,
        as one chunk) unless done earlier in the run; then start the next chunk's downloads in
        the background, so they overlap the booking of this one."""
        record = records[entry_id]
        if record.pk in self.fetched_receipts or record.state not in _TO_BOOK:
            return
        ahead, self.receipts_ahead = self.receipts_ahead, None
        try:
            if ahead is not None and any(r.pk == record.pk for r, _ in ahead[0]):
                chunk, outcomes = ahead[0], ahead[1].result()
            else:
                start = _position(ordered, entry_id)
                chunk = self.receipts_chunk(start, ordered, records, export_items)
                outcomes = self.receipts_download(chunk)
            self.run.lease.renew_if_due()
            self.fetched_receipts.update(
                receipts_index(
                    company=self.run.company,
                    job=self.job,
                    items=chunk,
                    outcomes=outcomes,
                    write_guard=self.run.lease.guard,
                )
            )
        except LeaseLost:
            raise
        except Exception as exc:  # the archive (disk, S3) failed: nothing booked, try later
            logger.exception("Receipts of job %s could not be archived", self.job.pleo_job_id)
            self.flush()
            raise Pause(
                f"The receipt archive could not be written ({type(exc).__name__}); nothing was "
                f"booked for the items waiting on their receipts."
            ) from None
        if chunk:
            after = _position(ordered, chunk[-1][0].accounting_entry_id) + 1
            following = self.receipts_chunk(after, ordered, records, export_items)
            if any(file_refs(raw) for _, raw in following):
                if self._receipts_pool is None:
                    self._receipts_pool = ThreadPoolExecutor(1, "receipts-ahead")
                future = self._receipts_pool.submit(self.receipts_download, following)
                self.receipts_ahead = (following, future)

    def receipts_chunk(self, start, ordered, records, export_items) -> list:
        """From ``ordered[start]`` on: the next items to book whose files are not fetched yet,
        as ``(record, raw export item)``; at most ``CHUNK_PER_THREAD`` per download thread."""
        size = CHUNK_PER_THREAD * max(1, int(settings.RECEIPTS_DOWNLOAD_CONCURRENCY))
        chunk = []
        for item in ordered[start:]:
            record = records[item.accounting_entry_id]
            data = export_items.get(item.accounting_entry_id)
            if record.state in _TO_BOOK and data is not None:
                if item.accounting_entry_id in self.cut_entries:
                    break  # left for re-export by the expiry guard, as every item after it
                if record.pk not in self.fetched_receipts:
                    chunk.append((record, data.raw))
            if len(chunk) >= size:
                break
        return chunk

    def receipts_download(self, chunk: list) -> dict:
        """The chunk's downloads (no database: may run in the background), ending a safety
        margin before the job's deadline as it stands now."""
        if not any(file_refs(raw) for _, raw in chunk):
            return {}
        margin = self.job.expires_in * FINISH_MARGIN_SHARE + settings.EXPIRY_CLOCK_SKEW_SECONDS
        deadline = self.deadline() - timedelta(seconds=margin)
        config = FetchConfig.from_settings()
        if self._download_pool is None:
            self._download_pool = ThreadPoolExecutor(config.concurrency, "receipts")
        return receipts_download(
            company_pk=self.run.company.pk,
            items=chunk,
            deadline=deadline,
            config=config,
            pool=self._download_pool,
        )

    def receipts_close(self) -> None:
        """The run is done booking: no more downloads ahead."""
        for pool in (self._receipts_pool, self._download_pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._receipts_pool = self._download_pool = None
        self.receipts_ahead = None

    def receipts_for_booking(
        self, record: ExportItemRecord
    ) -> tuple[BookingResult | None, tuple[ReceiptFile, ...]]:
        """Why the item may not be booked for its receipts (None: book it), and the receipts to
        pass to the adapter: those fetched, within the adapter's ``attachment_limits``. A file
        over them fails the item, or with ``RECEIPTS_REQUIRED`` off is left out (audited)."""
        verdict = self.fetched_receipts.pop(record.pk, None)  # used once: not kept for the run
        if verdict is None:
            return None, ()
        notes, verdict.notes = verdict.notes, []
        if verdict.out_of_time:
            return BookingResult.failure(
                pleo.ItemFailureReasonType.RECEIPT_DOWNLOAD_FAILURE,
                f"Not exported: its receipts could not be fetched before "
                f"{utc_text(verdict.out_of_time)}, when the job had to be finished before Pleo "
                f"expires it. Nothing was booked for it: export it again from Pleo.",
            ), ()
        if verdict.failure_type is not None:
            return BookingResult.failure(verdict.failure_type, verdict.failure), ()
        files = [receipt_adapter_file(row) for row in verdict.receipts]
        adapter = self.adapter
        assert adapter is not None
        if files and adapter.attachment_limits.max_count == 0:
            # An adapter that takes no attachments at all: the receipts are archived only.
            self.note_archived_only(adapter.label)
            files = []
        problems = adapter.attachment_limits.judge(files)
        if problems and settings.RECEIPTS_REQUIRED:
            return BookingResult.failure(
                problems[0].failure_type,
                f"{adapter.label} cannot take this item's receipts: "
                + " ".join(p.message for p in problems),
            ), ()
        left_out = {p.position for p in problems}
        notes += [
            f"{p.message} Booked in {adapter.label} without it (RECEIPTS_REQUIRED is off)."
            for p in problems
        ]
        for note in notes:
            self.audit(
                AuditStep.RECEIPT_NOTE,
                f"Item {record.accounting_entry_id}: {note}",
                outcome=AuditEntry.Outcome.WARNING,
            )
        return None, tuple(f for n, f in enumerate(files, start=1) if n not in left_out)

    def note_archived_only(self, label: str) -> None:
        """Once per run: the adapter attaches nothing, the receipts stay in the archive."""
        if self.archived_only_noted:
            return
        self.archived_only_noted = True
        self.audit(
            AuditStep.RECEIPTS_ARCHIVED_ONLY,
            f"{label} takes no attachments: the items' receipts are archived here and booked "
            f"without them.",
            outcome=AuditEntry.Outcome.INFO,
        )


def _position(ordered: list[pleo.ExportJobItem], entry_id: uuid.UUID) -> int:
    return next(i for i, item in enumerate(ordered) if item.accounting_entry_id == entry_id)
