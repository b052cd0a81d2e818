"""Job items and export items.

* A job's items (``GET|PUT /v3/export-jobs/{id}/items``): the status an integration reports for
  each accounting entry, up to 100 updates a request, partial success (unknown entries come back
  as errors, the rest is applied).
* Export items (``GET /v3/export-items``): the accounting data of the entries of unfinished jobs
  (generated per seed and entry by :mod:`pleo_sandbox.data`), with their receipt files' URLs
  (``GET /files/{id}``, served by the routes from :meth:`Items.file`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pleo_sandbox import variants
from pleo_sandbox.auth import require_scope
from pleo_sandbox.clock import iso, parse_iso
from pleo_sandbox.entities import (
    ITEM_FAILURE_REASON_TYPES,
    ITEM_OUTCOME_FIELDS,
    ITEM_STATUSES,
    MAX_ITEMS_PER_UPDATE,
    MSG_ENTRY_MISSING,
    MSG_ITEMS_LIMIT,
    MSG_JOB_FINISHED_EXPORT_ITEMS,
    MSG_JOB_FINISHED_ITEMS,
    MSG_JOB_NOT_STARTED,
    MSG_MISSING_CONTRA,
    Credential,
    Job,
)
from pleo_sandbox.errors import ApiError
from pleo_sandbox.fields import bad_request, enum_field, optional_str, uuid_field
from pleo_sandbox.job_events import sweep
from pleo_sandbox.rendering import camel
from pleo_sandbox.store import Store
from pleo_sandbox.vocabulary import ItemStatus, JobStatus


class Items:
    """Job items and export items over the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def export_items(self, job_id: str) -> list[dict]:
        """The job's ExportItemV3 payloads, whatever its status (control view)."""
        with self.store.lock:
            job = self.store.jobs[job_id]
            return [self.render_export_item(job, e) for e in job.items]

    def file(self, file_id: str) -> dict | None:
        with self.store.lock:
            f = self.store.files.get(file_id)
            return dict(f) if f else None

    def api_list_job_items(
        self, cred: Credential, job_id: str, query: dict[str, list[str]]
    ) -> dict:
        require_scope(cred, "export-jobs:read")
        status_values = query.get("status") or []
        if len(status_values) > 1:
            raise bad_request("Parameter 'status' given more than once.")
        status = enum_field(status_values[0], ITEM_STATUSES, "status") if status_values else None
        with self.store.lock:
            sweep(self.store)
            job = self.store.visible_job(cred, job_id)
            indexed = list(enumerate(job.items.values()))
            rows = [(i, it) for i, it in indexed if status is None or it.status == status]
            rows = [it for _, it in self.store.ordered(rows, key=lambda r: r[0])]
            page, info = self.store.page(
                rows,
                query,
                {
                    "accountingEntryId": lambda it: it.accounting_entry_id,
                    "status": lambda it: it.status,
                },
            )
            return {"data": [it.to_api() for it in page], "pagination": info}

    def api_update_items(
        self, cred: Credential, job_id: str, body: Any, request_id: str | None = None
    ) -> dict:
        require_scope(cred, "export-jobs:write")
        if not isinstance(body, list):
            raise bad_request("Request body must be a JSON array of item updates.")
        if len(body) > MAX_ITEMS_PER_UPDATE:
            raise ApiError(413, "EXPORT_JOB_ITEMS_UPDATE_LIMIT", MSG_ITEMS_LIMIT)
        updates = [_parse_item_update(i, e) for i, e in enumerate(body)]
        with self.store.lock:
            sweep(self.store)
            job = self.store.visible_job(cred, job_id)
            if job.finished:
                raise ApiError(422, "EXPORT_JOB_STATUS_UNPROCESSABLE", MSG_JOB_FINISHED_ITEMS)
            if (
                job.status == JobStatus.PENDING
                and self.store.switch("item_updates_on_pending") == "422"
            ):
                raise ApiError(422, "EXPORT_JOB_STATUS_UNPROCESSABLE", MSG_JOB_NOT_STARTED)
            data, errors = [], []
            for update in updates:
                item = job.items.get(update["accountingEntryId"])
                if item is None:
                    errors.append(
                        {
                            "accountingEntryId": update["accountingEntryId"],
                            "message": MSG_ENTRY_MISSING,
                            "type": variants.error_type(
                                "ACCOUNTING_ENTRY_DOES_NOT_EXIST",
                                self.store.switch("error_type_case"),
                            ),
                        }
                    )
                    continue
                for name in ITEM_OUTCOME_FIELDS:
                    setattr(item, name, update[camel(name)])
                data.append(item.to_api())
            if self.store.switch("put_refreshes_last_updated"):
                job.last_updated_at = self.store.clock.now()
            job.item_updates.append(
                {
                    "at": iso(self.store.clock.now()),
                    "identity": cred.identity,
                    "requestId": request_id,
                    "updates": [
                        {"accountingEntryId": u["accountingEntryId"], "status": u["status"]}
                        for u in updates
                    ],
                    "errors": [e["accountingEntryId"] for e in errors],
                }
            )
            return {"data": data, "errors": errors}

    def api_list_export_items(self, cred: Credential, query: dict[str, list[str]]) -> dict:
        require_scope(cred, "export-items:read")
        job_values = query.get("job_id") or []
        if len(job_values) > 1:
            raise bad_request("Parameter 'job_id' given more than once.")
        with self.store.lock:
            sweep(self.store)
            if job_values:
                job = self.store.visible_job(cred, uuid_field(job_values[0], "job_id"))
                if job.finished:
                    raise ApiError(
                        422, "EXPORT_JOB_STATUS_UNPROCESSABLE", MSG_JOB_FINISHED_EXPORT_ITEMS
                    )
                jobs = [job]
            else:
                visible = self.store.visible_companies(cred)
                jobs = [
                    j
                    for j in sorted(self.store.jobs.values(), key=lambda j: j.seq)
                    if j.company_id in visible and not j.finished
                ]
            for job in jobs:
                if not self.store.companies[job.company_id].contra_accounts_configured:
                    raise ApiError(400, "MISSING_CONTRA_ACCOUNTS", MSG_MISSING_CONTRA)
            rows = [(job, e) for job in jobs for e in job.items]
            rows = self.store.ordered(list(enumerate(rows)), key=lambda r: r[0])
            rows = [r for _, r in rows]
            page, info = self.store.page(
                rows,
                query,
                {
                    "accountingEntryId": lambda r: r[1],
                    "date": lambda r: r[0].export_items[r[1]]["date"],
                },
            )
            return {"data": [self.render_export_item(j, e) for j, e in page], "pagination": info}

    def render_export_item(self, job: Job, entry_id: str) -> dict:
        stored = job.export_items[entry_id]
        expires = int((self.store.clock.now() + timedelta(hours=24)).timestamp())
        item = {
            "_links": {
                "web": {"exportItem": f"https://app.pleo.io/export/{job.id}/{entry_id}"},
                "mobile": {"exportItem": f"pleo://export/{job.id}/{entry_id}"},
                "api": {"exportItem": f"{self.store.base_url}/v3/export-items?job_id={job.id}"},
            }
        }
        item.update({k: v for k, v in stored.items() if k != "files"})
        item["files"] = [
            {
                "url": f"{self.store.base_url}/files/{f['fileId']}?expires={expires}",
                "type": f["type"],
                "size": f["size"],
            }
            for f in stored["files"]
        ]
        return _deep_copy(item)


def _parse_item_update(index: int, element: Any) -> dict:
    """One element of a ``PUT /v3/export-jobs/{id}/items`` body, checked (400 on a mistake)."""
    where = f"element {index}"
    if not isinstance(element, dict):
        raise bad_request(f"{where} must be an object.")
    parsed = {
        "accountingEntryId": uuid_field(
            element.get("accountingEntryId"), f"{where}.accountingEntryId"
        ),
        "status": ItemStatus(enum_field(element.get("status"), ITEM_STATUSES, f"{where}.status")),
        "externalId": optional_str(element, "externalId"),
        "externalUrl": optional_str(element, "externalUrl"),
        "failureReason": optional_str(element, "failureReason"),
        "failureReasonType": None,
        "exportedAt": None,
    }
    if element.get("failureReasonType") is not None:
        parsed["failureReasonType"] = enum_field(
            element["failureReasonType"],
            ITEM_FAILURE_REASON_TYPES,
            f"{where}.failureReasonType",
        )
    exported = optional_str(element, "exportedAt")
    if exported is not None:
        try:
            parsed["exportedAt"] = iso(parse_iso(exported))
        except ValueError:
            raise bad_request(f"{where}.exportedAt is not an ISO-8601 date-time.")
    return parsed


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
