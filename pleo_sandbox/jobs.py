"""Export jobs: creation (by Pleo's web app through the control API, or ``POST
/v3/export-jobs``), reads, events posted by an integration, and the control shortcuts tests use.

A created job notifies the subscriptions (:mod:`pleo_sandbox.subscriptions`): the deliveries are
built under the store's lock and queued after it is released, so a slow receiver never holds the
lock. Transitions and expiry are in :mod:`pleo_sandbox.job_events`; items in
:mod:`pleo_sandbox.items`.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pleo_sandbox import variants
from pleo_sandbox.auth import require_scope
from pleo_sandbox.clock import parse_iso
from pleo_sandbox.data import ITEM_KINDS, generate_export_item
from pleo_sandbox.entities import (
    CONTROL_IDENTITY,
    JOB_STATUSES,
    MSG_ALREADY_IN_PROGRESS,
    MSG_INVALID_CHANGE,
    MSG_MISSING_CONTRA,
    OTHER_INTEGRATION,
    WALLET_CURRENCIES,
    Company,
    Credential,
    Job,
    JobItem,
)
from pleo_sandbox.errors import ApiError
from pleo_sandbox.fields import bad_request, enum_field, uuid_field
from pleo_sandbox.job_events import (
    apply_event,
    event_record,
    parse_event_body,
    strict_event_check,
    sweep,
)
from pleo_sandbox.store import Store
from pleo_sandbox.subscriptions import Subscriptions
from pleo_sandbox.vocabulary import JobEvent, JobStatus


class Jobs:
    """Export jobs over the store; job-created webhooks through ``subscriptions``."""

    def __init__(self, store: Store, subscriptions: Subscriptions) -> None:
        self.store = store
        self.subscriptions = subscriptions

    # -- control -------------------------------------------------------------------------------
    def create_job(
        self,
        company_id: str,
        items: int | Sequence[str] | Mapping[str, int] = 3,
        *,
        created_at: datetime | str | None = None,
        expires_in: int | None = None,
        vendor_based_bookkeeping: bool = False,
        is_interactive: bool = True,
        created_by: str | None = None,
        accounting_entry_ids: Sequence[str] | None = None,
        notify: bool = True,
        conflict_check: bool = False,
        receipts: Mapping[str, Any] | None = None,
    ) -> dict:
        """Create a pending job as Pleo's web app would; returns its API representation.

        ``items``: a count (all ``normal``), a list of kinds, or ``{kind: count}`` (in order);
        kinds are ``normal``, ``foreign``, ``refund``, ``missing_account``, ``missing_contra``.
        ``notify`` sends the ``v1.export-job.created`` webhook. The ``conflict_on_create`` rule
        (one unfinished job per company) is bypassed unless ``conflict_check``: then a company
        with an unfinished job raises the 409 ``ApiError`` that ``POST /v3/export-jobs`` answers.
        ``receipts`` (``{"count", "size", "type"}``) gives every item exactly that many files of
        that size and type instead of the generated ones (benchmarks); the rest is unchanged.
        """
        kinds = self._expand_kinds(items)
        with self.store.lock:
            sweep(self.store)
            company = self.store.company(company_id)
            if conflict_check:
                self._check_conflict(company.id)
            if accounting_entry_ids is not None:
                if len(accounting_entry_ids) != len(kinds):
                    kinds = ["normal"] * len(accounting_entry_ids)
                entry_ids = [str(uuid.UUID(e)) for e in accounting_entry_ids]
            else:
                entry_ids = [self.store.new_id() for _ in kinds]
            if isinstance(created_at, str):
                created_at = parse_iso(created_at)
            job = self._create_job(
                company,
                list(zip(entry_ids, kinds, strict=True)),
                created_at=created_at or self.store.clock.now(),
                expires_in=expires_in,
                vendor_based_bookkeeping=vendor_based_bookkeeping,
                is_interactive=is_interactive,
                # As if a user of the company clicked Export in the web app.
                created_by=created_by or self.store.rng.choice(company.profile.users)["id"],
                receipts=receipts,
            )
            job.events.append(
                event_record(self.store, job, JobEvent.CREATED, CONTROL_IDENTITY, True, None)
            )
            # The webhook carries the job as created (pending), even if it is already overdue.
            deliveries = self.subscriptions.job_created_deliveries(job) if notify else []
            sweep(self.store)
            out = job.to_api()
        self.subscriptions.send(deliveries)
        return out

    @staticmethod
    def _expand_kinds(items: int | Sequence[str] | Mapping[str, int]) -> list[str]:
        if isinstance(items, int):
            kinds = ["normal"] * items
        elif isinstance(items, Mapping):
            kinds = [k for k, n in items.items() for _ in range(int(n))]
        else:
            kinds = list(items)
        for kind in kinds:
            if kind not in ITEM_KINDS:
                raise ValueError(f"unknown item kind {kind!r}; expected one of {ITEM_KINDS}")
        return kinds

    def _create_job(
        self,
        company: Company,
        entries: list[tuple[str, str]],
        *,
        created_at: datetime,
        expires_in: int | None,
        vendor_based_bookkeeping: bool,
        is_interactive: bool,
        created_by: str | None,
        receipts: Mapping[str, Any] | None = None,
    ) -> Job:
        job = Job(
            id=self.store.new_id(),
            company_id=company.id,
            created_at=created_at,
            expires_in=int(
                expires_in if expires_in is not None else self.store.switch("default_expires_in")
            ),
            is_interactive=is_interactive,
            vendor_based_bookkeeping=vendor_based_bookkeeping,
            created_by=created_by,
            seq=self.store.next_seq(),
        )
        for entry_id, kind in entries:
            if entry_id in job.items:
                raise bad_request(f"Duplicate accounting entry id {entry_id}.")
            job.items[entry_id] = JobItem(entry_id, job.id, kind)
            item = generate_export_item(
                random.Random(f"{self.store.seed}/item/{entry_id}/{kind}"),
                profile=company.profile,
                company_id=company.id,
                accounting_entry_id=entry_id,
                kind=kind,
                job_created_at=created_at,
                vendor_based_bookkeeping=vendor_based_bookkeeping,
            )
            if receipts is not None:
                item["files"] = _fixed_files(self.store.seed, entry_id, receipts)
            for f in item["files"]:
                self.store.files[f["fileId"]] = {**f, "accountingEntryId": entry_id}
            job.export_items[entry_id] = item
        self.store.jobs[job.id] = job
        return job

    def get_job(self, job_id: str) -> dict:
        """Everything about a job: ``{"job", "items" (with kinds), "events", "itemUpdates"}``."""
        with self.store.lock:
            sweep(self.store)
            job = self.store.jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            return {
                "job": job.to_api(),
                "items": [{**i.to_api(), "kind": i.kind} for i in job.items.values()],
                "events": [dict(e) for e in job.events],
                "itemUpdates": [dict(u) for u in job.item_updates],
            }

    def list_jobs(self, company_id: str | None = None) -> list[dict]:
        with self.store.lock:
            sweep(self.store)
            return [
                j.to_api()
                for j in sorted(self.store.jobs.values(), key=lambda j: j.seq)
                if company_id is None or j.company_id == company_id
            ]

    def start_as_other_integration(self, job_id: str) -> bool:
        """Another integration posts ``started`` for the job; True if it moved to in_progress."""
        with self.store.lock:
            sweep(self.store)
            return self._started_by_another(self.store.jobs[job_id])

    def set_job_status(self, job_id: str, status: str, **fields: Any) -> dict:
        """Force a job's status (escape hatch for test set-up; no transition rules)."""
        with self.store.lock:
            job = self.store.jobs[job_id]
            allowed = (*JOB_STATUSES, variants.EXPIRED_STATUS)
            job.status = JobStatus(enum_field(status, allowed, "status"))
            for name, value in fields.items():
                setattr(job, name, value)
            return job.to_api()

    def send_job_created_webhook(self, job_id: str) -> int:
        """(Re)send ``v1.export-job.created`` for a job as a new event; returns deliveries."""
        with self.store.lock:
            deliveries = self.subscriptions.job_created_deliveries(self.store.jobs[job_id])
        self.subscriptions.send(deliveries)
        return len(deliveries)

    def seed_companies(
        self, n: int, *, jobs_per_company: int = 2, items_per_job: int | Mapping[str, int] = 3
    ) -> list[dict]:
        """``n`` companies, each with an API key and ``jobs_per_company`` pending jobs."""
        out = []
        for i in range(n):
            company = self.store.add_company(currency=WALLET_CURRENCIES[i % len(WALLET_CURRENCIES)])
            key = self.store.add_credential("api_key", company_id=company.id, label=f"seed-{i + 1}")
            jobs = [
                self.create_job(
                    company.id,
                    items_per_job,
                    created_at=self.store.clock.now()
                    - timedelta(minutes=5 * (jobs_per_company - j)),
                )["id"]
                for j in range(jobs_per_company)
            ]
            out.append(
                {
                    "company": company.to_dict(),
                    "apiKey": key.secret,
                    "credentialId": key.id,
                    "jobIds": jobs,
                }
            )
        return out

    # -- Export API v3 (called by the HTTP layer with an authenticated credential) -------------
    def _check_conflict(self, company_id: str) -> None:
        """The ``conflict_on_create`` switch: 409 while the company has an unfinished job."""
        if self.store.switch("conflict_on_create") and any(
            j.company_id == company_id and not j.finished for j in self.store.jobs.values()
        ):
            raise ApiError(409, "EXPORT_ALREADY_IN_PROGRESS", MSG_ALREADY_IN_PROGRESS)

    def api_list_jobs(self, cred: Credential, query: dict[str, list[str]]) -> dict:
        require_scope(cred, "export-jobs:read")
        with self.store.lock:
            sweep(self.store)
            visible = self.store.visible_companies(cred)
            company_values = query.get("company_id") or []
            if len(company_values) > 1:
                raise bad_request("Parameter 'company_id' given more than once.")
            if company_values:
                company_id = uuid_field(company_values[0], "company_id")
                visible = visible & {company_id}
            statuses: list[str] = []
            for raw in query.get("statuses", []) + query.get("statuses[]", []):
                for value in raw.split(","):
                    if value:
                        allowed = variants.job_statuses(
                            JOB_STATUSES, bool(self.store.switch("expired_status"))
                        )
                        statuses.append(enum_field(value, allowed, "statuses"))
            rows = [
                j
                for j in self.store.jobs.values()
                if j.company_id in visible and (not statuses or j.status in statuses)
            ]
            rows = self.store.ordered(rows, key=lambda j: (j.created_at, j.seq))
            page, info = self.store.page(
                rows,
                query,
                {
                    "createdAt": lambda j: j.created_at,
                    "id": lambda j: j.id,
                    "status": lambda j: j.status,
                    "lastUpdatedAt": lambda j: j.last_updated_at,
                },
            )
            return {"data": [j.to_api() for j in page], "pagination": info}

    def api_get_job(self, cred: Credential, job_id: str) -> dict:
        require_scope(cred, "export-jobs:read")
        with self.store.lock:
            sweep(self.store)
            return {"data": self.store.visible_job(cred, job_id).to_api()}

    def api_create_job(self, cred: Credential, body: Any) -> dict:
        require_scope(cred, "export-jobs:write")
        if not isinstance(body, dict):
            raise bad_request("Request body must be a JSON object.")
        company_id = uuid_field(body.get("companyId"), "companyId")
        entry_ids = body.get("accountingEntryIds")
        if not isinstance(entry_ids, list) or not entry_ids:
            raise bad_request("'accountingEntryIds' must be a non-empty array of UUIDs.")
        entry_ids = [uuid_field(e, "accountingEntryIds") for e in entry_ids]
        if len(set(entry_ids)) != len(entry_ids):
            raise bad_request("'accountingEntryIds' contains duplicates.")
        employee_id = body.get("employeeId")
        if employee_id is not None:
            employee_id = uuid_field(employee_id, "employeeId")
        interactive = body.get("isInteractive")
        if interactive is not None and not isinstance(interactive, bool):
            raise bad_request("'isInteractive' must be a boolean.")
        options = body.get("options")
        if options is not None and not isinstance(options, dict):
            raise bad_request("'options' must be an object.")
        vbb = (options or {}).get("vendorBasedBookkeeping")
        if vbb is not None and not isinstance(vbb, bool):
            raise bad_request("'options.vendorBasedBookkeeping' must be a boolean.")
        with self.store.lock:
            sweep(self.store)
            if company_id not in self.store.visible_companies(cred):
                raise ApiError(403, "FORBIDDEN", "No access to this company.")
            company = self.store.companies[company_id]
            if not company.contra_accounts_configured:
                raise ApiError(400, "MISSING_CONTRA_ACCOUNTS", MSG_MISSING_CONTRA)
            self._check_conflict(company_id)
            entries = []
            for entry_id in entry_ids:
                roll = random.Random(f"{self.store.seed}/kind/{entry_id}").random()
                entries.append(
                    (entry_id, "normal" if roll < 0.7 else "foreign" if roll < 0.9 else "refund")
                )
            job = self._create_job(
                company,
                entries,
                created_at=self.store.clock.now(),
                expires_in=None,
                vendor_based_bookkeeping=bool(vbb),
                is_interactive=True if interactive is None else interactive,
                created_by=employee_id,
            )
            job.events.append(
                event_record(self.store, job, JobEvent.CREATED, cred.identity, True, None)
            )
            deliveries = self.subscriptions.job_created_deliveries(job)
            out = {"data": job.to_api()}
        self.subscriptions.send(deliveries)
        return out

    def api_post_event(self, cred: Credential, body: Any, request_id: str | None = None) -> None:
        require_scope(cred, "export-jobs:write")
        parsed = parse_event_body(body)
        with self.store.lock:
            sweep(self.store)
            job = self.store.visible_job(cred, parsed["jobId"])
            strict_event_check(self.store, job, parsed, cred.identity, request_id)
            accepted = apply_event(
                self.store,
                job,
                parsed["event"],
                cred.identity,
                parsed["failureReason"],
                parsed["failureReasonType"],
                request_id,
            )
            if not accepted:
                raise ApiError(422, "INVALID_EXPORT_JOB_STATUS_CHANGE", MSG_INVALID_CHANGE)

    def other_integration_preempts(self, body: Any) -> bool:
        """The ``other_integration_starts`` fault: start the body's job as someone else."""
        if not isinstance(body, dict):
            return False
        with self.store.lock:
            sweep(self.store)
            return self._started_by_another(self.store.jobs.get(str(body.get("jobId"))))

    def _started_by_another(self, job: Job | None) -> bool:
        """Another integration posts ``started`` for a pending job; True if it did."""
        if job is None or job.status != JobStatus.PENDING:
            return False
        apply_event(self.store, job, JobEvent.STARTED, OTHER_INTEGRATION, None, None, None)
        return True


def _fixed_files(seed: int, entry_id: str, spec: Mapping[str, Any]) -> list[dict]:
    """``spec["count"]`` files of ``spec["size"]`` bytes and ``spec["type"]`` (default one PDF
    of 200,000 bytes), their ids seeded by the entry."""
    rng = random.Random(f"{seed}/files/{entry_id}")
    return [
        {
            "fileId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "type": str(spec.get("type", "application/pdf")),
            "size": int(spec.get("size", 200_000)),
        }
        for _ in range(int(spec.get("count", 1)))
    ]
