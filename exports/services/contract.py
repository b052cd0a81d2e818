"""``verify_pleo_contract``: check what one company's Pleo answers against Pleo's published
contract and our readings of it, with read-only calls.

For an operator with a real (staging or production) credential. The calls, all ``GET``, through
the product's own client for the company's stored credential (so its base URL, authentication,
retries and the shared request budget apply), at most ``MAX_PAGES`` pages of ``PAGE_LIMIT`` per
list, so a check costs a handful of requests (about 7; at most ~25):

1. the company's jobs with every status (no ``statuses`` filter), every page;
2. the same list filtered ``statuses=pending&statuses=in_progress``, as the product asks;
3. one job (the newest unfinished, else the newest), its items, and its export items when it is
   unfinished (Pleo serves export items only then) - for a finished job instead the 422 that
   export items answer then;
4. a job id that does not exist (a fresh random UUID): the 404 and its error ``type``;
5. the credential's webhook subscriptions.

Nothing is written to Pleo; no secret is read (the subscription secret endpoint is not called)
and none is printed. An OAuth credential's access token may be refreshed first, as for any run.
What each answer is checked for: :mod:`exports.pleo.contract`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from exports import pleo
from exports.models import Company
from exports.pleo import contract
from exports.pleo.contract import EXPORT_API, EXPORT_ITEMS, SUBSCRIPTIONS, Finding
from exports.services.credentials import CredentialUnusable, pleo_client_for_company
from exports.services.subscriptions import EVENT_TYPES
from exports.services.webhooks import EXPORT_JOB_CREATED_EVENT_TYPES

logger = logging.getLogger(__name__)

PAGE_LIMIT = 100
MAX_PAGES = 5
UNFINISHED = ("pending", "in_progress")


@dataclass
class ContractReport:
    company: Company
    base_url: str
    findings: list[Finding] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # "GET /path", in order
    stopped: str = ""  # why the check could not go on (budget, credential), if it stopped

    @property
    def ok(self) -> bool:
        return not self.stopped and not any(
            f.status == contract.Status.MISMATCH for f in self.findings
        )

    def log(self, service: str, logger: logging.Logger) -> None:
        """One line of the outcome on ``logger`` (the checking module's)."""
        logger.info(
            "%s contract check for %s: %s (%d requests)",
            service,
            self.company.name,
            "all matched" if self.ok else "differences found",
            len(self.requests),
        )

    def counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in contract.Status}
        for finding in self.findings:
            counts[finding.status.value] += 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "company": self.company.name,
            "pleo_company_id": str(self.company.pleo_company_id),
            "base_url": self.base_url,
            "ok": self.ok,
            "counts": self.counts(),
            "requests": len(self.requests),
            "methods": sorted({r.split(" ", 1)[0] for r in self.requests}),
            "stopped": self.stopped,
            "findings": [f.as_dict() for f in self.findings],
        }


class _Stop(Exception):
    """The check cannot go on (budget spent, credential refused)."""


class _Reader:
    """The read-only calls, each recorded; Pleo's errors are returned, not raised, except the
    ones that stop the whole check."""

    def __init__(self, client: pleo.PleoClient, report: ContractReport) -> None:
        self.client = client
        self.report = report
        self.lists: dict[str, list[Any]] = {}  # what each list read served, for pagination
        self.capped: list[str] = []  # the lists left unread after MAX_PAGES

    def get(self, path: str, params: dict | None = None) -> Any:
        self.report.requests.append(f"GET {path}")
        try:
            return self.client.get_json(path, params)
        except pleo.BudgetExhausted as exc:
            raise _Stop(
                f"our request budget is spent ({exc}); run the check again after "
                f"{exc.retry_at:%H:%M:%S} UTC"
            ) from None
        except pleo.PleoAuthError as exc:
            raise _Stop(f"Pleo refused the credential: {exc}") from None

    def listed(self, key: str, check: str, path: str, params: dict) -> tuple[list[Any], bool]:
        """:meth:`pages`, kept under ``key`` for the pagination check; a failed call is a
        mismatch of ``check`` and reads as no pages."""
        try:
            pages, more = self.pages(path, params)
        except pleo.PleoError as exc:
            self.report.findings.append(_failed(check, exc))
            return [], False
        self.lists[key] = pages
        if more:
            self.capped.append(f"{key} after {len(pages)} pages")
        return pages, more

    def pages(self, path: str, params: dict) -> tuple[list[Any], bool]:
        """Up to ``MAX_PAGES`` raw pages; True when more were left unread."""
        query = {**params, "limit": PAGE_LIMIT}
        pages: list[Any] = []
        while True:
            body = self.get(path, query)
            pages.append(body)
            info = body.get("pagination") if isinstance(body, dict) else None
            cursor = info.get("endCursor") if isinstance(info, dict) else None
            if not (isinstance(info, dict) and info.get("hasNextPage") is True and cursor):
                return pages, False
            if len(pages) >= MAX_PAGES:
                return pages, True
            query = {**query, "after": cursor}


def _rows(pages: list[Any]) -> list[Any]:
    rows: list[Any] = []
    for body in pages:
        data = body.get("data") if isinstance(body, dict) else None
        rows += data if isinstance(data, list) else []
    return rows


def _failed(check: str, exc: pleo.PleoError) -> Finding:
    return contract.mismatch(check, f"the call failed: {exc}")


def pleo_contract_verify(*, company: Company) -> ContractReport:
    """Run every check for ``company``; never raises for what Pleo answers."""
    credential = company.credential
    report = ContractReport(company=company, base_url=credential.api_base_url or "")
    try:
        client = pleo_client_for_company(company=company, run_id=None)
    except CredentialUnusable as exc:
        report.stopped = str(exc)
        return report
    report.base_url = client.config.base_url
    with client:
        reader = _Reader(client, report)
        try:
            _run_checks(reader, report, company)
        except _Stop as exc:
            report.stopped = str(exc)
    report.log("Pleo", logger)
    return report


def _run_checks(reader: _Reader, report: ContractReport, company: Company) -> None:
    add = report.findings.append
    company_id = str(company.pleo_company_id)

    # 1. Every job of the company, whatever its status.
    job_pages, more = reader.listed(
        "jobs", "jobs.schema", "/v3/export-jobs", {"company_id": company_id}
    )
    jobs = [j for j in _rows(job_pages) if isinstance(j, dict)]
    if job_pages:
        what = f"{contract.plural(len(jobs), 'job')} on {contract.plural(len(job_pages), 'page')}"
        add(
            contract.schema_finding(
                "jobs.schema", job_pages, "GET", "/v3/export-jobs", EXPORT_API, what
            )
        )
        add(_company_filter(jobs, company_id))
        add(
            contract.enum_finding("jobs.status_enum", jobs, "status", "ExportJobStatus", what="job")
        )
        add(
            contract.enum_finding(
                "jobs.failure_reason_type_enum",
                jobs,
                "failureReasonType",
                "ExportJobFailureReasonType",
                what="job",
                nullable=True,
            )
        )

    # 2. The filter the product uses to find work.
    add(_statuses_filter(reader, company_id, jobs, complete=bool(job_pages) and not more))

    # 3. One job, its items and export items.
    job = _pick(jobs)
    if job is None:
        why = "the company has no export job to read" if job_pages else "the job list failed"
        for check in ("job.schema", "items.schema", "export_items.schema"):
            add(contract.skipped(check, why))
    else:
        _job_checks(reader, report, job)

    # 4. A job that does not exist: the documented 404 and the case of its error type.
    add(_not_found(reader))

    # 5. Subscriptions of the credential.
    sub_pages, _ = reader.listed("subscriptions", "subscriptions.schema", "/v1/subscriptions", {})
    if sub_pages:
        subs = _rows(sub_pages)
        what = contract.plural(len(subs), "subscription")
        add(
            contract.schema_finding(
                "subscriptions.schema", sub_pages, "GET", "/v1/subscriptions", SUBSCRIPTIONS, what
            )
        )
        for finding in contract.event_types_findings(
            subs, subscribe_with=EVENT_TYPES[0], accepted=EXPORT_JOB_CREATED_EVENT_TYPES
        ):
            add(finding)

    if reader.lists:
        add(contract.pagination_finding("pagination", reader.lists, reader.capped))


def _company_filter(jobs: list[dict], company_id: str) -> Finding:
    others = sorted({str(j.get("companyId")) for j in jobs} - {company_id})
    if others:
        return contract.mismatch(
            "jobs.company_filter",
            f"company_id={company_id} also listed jobs of {contract.examples(others)}",
        )
    return contract.match("jobs.company_filter", "company_id= lists only this company's jobs")


def _statuses_filter(reader: _Reader, company_id: str, jobs: list[dict], complete: bool) -> Finding:
    check = "jobs.statuses_filter"
    params = {"company_id": company_id, "statuses": list(UNFINISHED), "limit": PAGE_LIMIT}
    try:
        body = reader.get("/v3/export-jobs", params)
    except pleo.PleoError as exc:
        return _failed(check, exc)
    listed = [j for j in _rows([body]) if isinstance(j, dict)]
    wrong = sorted({str(j.get("status")) for j in listed} - set(UNFINISHED))
    if wrong:
        return contract.mismatch(
            check, f"statuses=pending&statuses=in_progress also listed {', '.join(wrong)} jobs"
        )
    expected = {str(j.get("id")) for j in jobs if j.get("status") in UNFINISHED}
    got = {str(j.get("id")) for j in listed}
    has_more = isinstance(body, dict) and (body.get("pagination") or {}).get("hasNextPage") is True
    if complete and not has_more and got != expected:
        return contract.mismatch(
            check,
            f"the filtered list has {len(got)} jobs, the unfiltered one {len(expected)} "
            f"pending or in progress",
        )
    return contract.match(
        check, f"repeated statuses= (as we send it) lists {contract.plural(len(got), 'job')}"
    )


def _pick(jobs: list[dict]) -> dict | None:
    """The newest unfinished job (its export items can be read), else the newest job."""

    def newest(rows: list[dict]) -> dict | None:
        return max(rows, key=lambda j: (str(j.get("createdAt")), str(j.get("id"))), default=None)

    return newest([j for j in jobs if j.get("status") in UNFINISHED]) or newest(jobs)


def _job_checks(reader: _Reader, report: ContractReport, job: dict) -> None:
    add = report.findings.append
    job_id = str(job.get("id"))
    try:
        uuid.UUID(job_id)
    except ValueError:
        add(contract.skipped("job.schema", f"the newest job's id {job_id[:40]!r} is not a UUID"))
        return
    path = f"/v3/export-jobs/{job_id}"
    try:
        body = reader.get(path)
    except pleo.PleoError as exc:
        add(_failed("job.schema", exc))
        body = None
    status = job.get("status")
    if body is not None:
        add(
            contract.schema_finding(
                "job.schema", [body], "GET", "/v3/export-jobs/{jobId}", EXPORT_API, f"job {job_id}"
            )
        )
        data = body.get("data") if isinstance(body, dict) else None
        if isinstance(data, dict):
            status = data.get("status")
            add(
                contract.enum_finding(
                    "job.status_enum", [data], "status", "ExportJobStatus", what="job"
                )
            )

    item_pages, _ = reader.listed("items", "items.schema", f"{path}/items", {})
    if item_pages:
        items = _rows(item_pages)
        what = f"{contract.plural(len(items), 'item')} of job {job_id}"
        add(
            contract.schema_finding(
                "items.schema", item_pages, "GET", "/v3/export-jobs/{jobId}/items", EXPORT_API, what
            )
        )
        ident = "accountingEntryId"
        add(
            contract.enum_finding(
                "items.status_enum",
                items,
                "status",
                "ExportJobItemStatus",
                what="item",
                ident=ident,
            )
        )
        add(
            contract.enum_finding(
                "items.failure_reason_type_enum",
                items,
                "failureReasonType",
                "ExportJobItemFailureReasonType",
                what="item",
                ident=ident,
                nullable=True,
            )
        )

    if status in UNFINISHED:
        _export_items(reader, report, job_id)
    else:
        add(
            contract.skipped(
                "export_items.schema",
                f"no unfinished job (Pleo serves export items only while a job is pending or in "
                f"progress); job {job_id} is {status}",
            )
        )
        add(_finished_export_items(reader, job_id))


def _export_items(reader: _Reader, report: ContractReport, job_id: str) -> None:
    add = report.findings.append
    pages, _ = reader.listed(
        "export items", "export_items.schema", "/v3/export-items", {"job_id": job_id}
    )
    if not pages:
        return
    rows = _rows(pages)
    what = f"{contract.plural(len(rows), 'export item')} of job {job_id}"
    add(
        contract.schema_finding(
            "export_items.schema", pages, "GET", "/v3/export-items", EXPORT_ITEMS, what
        )
    )
    add(
        contract.receipt_hosts_finding(
            "export_items.receipt_hosts", rows, api_base_url=report.base_url
        )
    )


def _finished_export_items(reader: _Reader, job_id: str) -> Finding:
    """Export items of a finished job: the documented 422 and the case of its error type."""
    return _expect_error(
        reader,
        "export_items.finished_job_error",
        "/v3/export-items",
        {"job_id": job_id, "limit": 1},
        expected_status=422,
        expected=pleo.ErrorType.EXPORT_JOB_STATUS_UNPROCESSABLE,
        served=f"export items of finished job {job_id} were served (200)",
    )


def _not_found(reader: _Reader) -> Finding:
    missing = uuid.uuid4()  # random: no job has it
    return _expect_error(
        reader,
        "errors.not_found",
        f"/v3/export-jobs/{missing}",
        None,
        expected_status=404,
        expected=pleo.ErrorType.EXPORT_NOT_FOUND,
        served=f"a job that does not exist ({missing}) was served (200)",
    )


def _expect_error(
    reader: _Reader,
    check: str,
    path: str,
    params: dict | None,
    *,
    expected_status: int,
    expected: pleo.ErrorType,
    served: str,
) -> Finding:
    """A GET that must fail with ``expected_status`` and error type ``expected``."""
    try:
        reader.get(path, params)
    except pleo.PleoHTTPError as exc:
        return contract.error_type_finding(
            check,
            status=exc.status,
            error_type=exc.error_type,
            expected_status=expected_status,
            expected=expected.value,
        )
    except pleo.PleoError as exc:
        return _failed(check, exc)
    return contract.mismatch(check, served)
