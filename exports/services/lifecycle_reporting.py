"""The export lifecycle's reporting: decided item outcomes go to Pleo with ``PUT …/items`` in
batches (a 413 halves the batch); an unknown outcome is settled by re-reading the job's items.

A mixin of the lifecycle's ``_Carrier`` (``exports.services.lifecycle``): it uses the carrier's
``run``, ``job``, ``client``, ``audit`` and ``pleo_call``.
"""

from __future__ import annotations

import uuid

from exports import pleo
from exports.models import AuditEntry, AuditStep, ExportItemRecord
from exports.services.lifecycle_common import (
    FINAL_ITEM,
    MAX_REPORT_ATTEMPTS,
    Pause,
    plural,
)
from exports.services.runs import http_call


class ItemReporting:
    def flush(self) -> None:
        """Report the queued outcomes, in batches; settle unknown outcomes by re-reading."""
        if not self.queue:
            return
        records = {record.accounting_entry_id: record for record in self.queue}
        self.queue = []
        pending = [self.update_for(record) for record in records.values()]
        unknown_outcomes = 0
        while pending:
            chunk = pending[: self.batch_size]
            try:
                result = self.pleo_call(
                    "reporting item outcomes",
                    lambda chunk=chunk: self.client.update_export_job_items(
                        self.job.pleo_job_id, chunk
                    ),
                )
            except pleo.PleoPayloadTooLarge:
                if len(chunk) == 1:
                    raise
                self.batch_size = (len(chunk) + 1) // 2
                self.audit(
                    AuditStep.BATCH_TOO_LARGE,
                    f"Pleo refused {len(chunk)} item outcomes in one call (413 "
                    f"EXPORT_JOB_ITEMS_UPDATE_LIMIT); sending at most {self.batch_size} per "
                    f"call from now on.",
                    outcome=AuditEntry.Outcome.WARNING,
                    http=http_call("PUT", self.items_path, 413),
                )
                continue
            except pleo.PleoOutcomeUnknown as exc:
                unknown_outcomes += 1
                self.audit(
                    AuditStep.REPORT_UNKNOWN,
                    f"The outcome of reporting {plural(len(chunk), 'item')} is unknown "
                    f"({exc.message}); re-reading the job's items to see which took effect.",
                    outcome=AuditEntry.Outcome.WARNING,
                    http=http_call("PUT", self.items_path, exc.status),
                )
                landed = self.reconcile({update.accounting_entry_id for update in chunk})
                pending = [u for u in pending if u.accounting_entry_id not in landed]
                if pending and unknown_outcomes >= MAX_REPORT_ATTEMPTS:
                    raise Pause(
                        f"Reporting item outcomes ended {unknown_outcomes} times with an "
                        f"unknown outcome."
                    ) from None
                continue
            self.mark_touched()
            self.absorb(result, chunk, records)
            pending = pending[len(chunk) :]

    def update_for(self, record: ExportItemRecord) -> pleo.ItemUpdate:
        if record.result == ExportItemRecord.Result.SUCCESSFUL:
            return pleo.ItemUpdate.successful(
                record.accounting_entry_id,
                exported_at=record.exported_at,
                external_id=record.external_id or None,
                external_url=record.external_url or None,
            )
        return pleo.ItemUpdate.failed(
            record.accounting_entry_id,
            record.failure_reason or "The item could not be exported.",
            record.failure_reason_type or pleo.ItemFailureReasonType.UNEXPECTED_FAILURE,
        )

    def absorb(
        self,
        result: pleo.ItemUpdateResult,
        chunk: list[pleo.ItemUpdate],
        records: dict[uuid.UUID, ExportItemRecord],
    ) -> None:
        self.learn(result.items)
        final = {item.accounting_entry_id for item in result.items if item.status in FINAL_ITEM}
        for record in records.values():
            if record.accounting_entry_id in final:
                record.state = ExportItemRecord.State.REPORTED  # saved by learn()
        successful = sum(1 for u in chunk if u.status == pleo.ItemStatus.SUCCESSFUL)
        message = (
            f"Reported {plural(len(chunk), 'item outcome')} to Pleo: {successful} successful, "
            f"{len(chunk) - successful} failed."
        )
        if result.errors:
            message += f" Pleo rejected {len(result.errors)} of them (see below)."
        self.audit(AuditStep.ITEMS_REPORTED, message, http=http_call("PUT", self.items_path, 200))
        for error in result.errors:
            self.audit(
                AuditStep.ITEM_REPORT_REJECTED,
                f"Pleo did not accept the outcome of item {error.accounting_entry_id} "
                f"({error.type}): {error.message or 'no message'}. It stays unreported.",
                outcome=AuditEntry.Outcome.WARNING,
                http=http_call("PUT", self.items_path, 200),
            )

    def reconcile(self, sent: set[uuid.UUID]) -> set[uuid.UUID]:
        """After an unknown outcome: which of ``sent`` are final in Pleo now (they landed)."""
        items = self.pleo_call(
            "re-reading the job's items",
            lambda: self.client.list_export_job_items(self.job.pleo_job_id),
        )
        self.learn(items)
        landed = {i.accounting_entry_id for i in items if i.status in FINAL_ITEM} & sent
        self.audit(
            AuditStep.REPORT_RECONCILED,
            f"{len(landed)} of {len(sent)} reported item outcomes had taken effect in Pleo and "
            f"are not sent again; {len(sent - landed)} will be sent again.",
            outcome=AuditEntry.Outcome.INFO,
            http=http_call("GET", self.items_path, 200),
        )
        if landed:
            self.mark_touched()  # the PUT that landed refreshed the job in Pleo
        return landed
