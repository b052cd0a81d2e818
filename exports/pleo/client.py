"""The Pleo endpoints we use: Export API v3 (jobs, job events, job items, export items) and
Webhook Subscriptions API v1, as methods of :class:`PleoClient`, plus cursor pagination (§6.3).

Section numbers (§) refer to our working reference, ``docs/pleo-export-api.md``. Each method
checks its arguments before any HTTP (ids must be UUIDs, enum values known), sends one call (or
one per page or batch) through :class:`~exports.pleo.transport.PleoTransport`, whose module
docstring states the retry and idempotency rules (every write here goes with
``idempotent=False``), and parses the answer into :mod:`exports.pleo.resources`. Errors:
:mod:`exports.pleo.errors`.

The Pleo client (this package) imports no Django model and nothing from ``exports`` outside
``exports.pleo``; callers pass in what it needs.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from exports.pleo.enums import (
    UNFINISHED_JOB_STATUSES,
    ItemStatus,
    JobEvent,
    JobFailureReasonType,
    JobStatus,
    SubscriptionStatus,
    refuse_unknown,
)
from exports.pleo.errors import (
    PleoError,
    PleoPayloadTooLarge,
    PleoResponseError,
    blame,
)
from exports.pleo.resources import (
    ExportItem,
    ExportJob,
    ExportJobItem,
    ItemUpdate,
    ItemUpdateResult,
    Subscription,
    data_of,
    read_page,
    read_secret_key,
    subscription_body,
    uuid_arg,
)
from exports.pleo.transport import PleoTransport

logger = logging.getLogger(__name__)

MAX_PAGES = 10_000


class PleoClient(PleoTransport):
    """Pleo's Export API v3 and Subscriptions API v1 over one ``requests.Session``.

    Built like :class:`~exports.pleo.transport.PleoTransport` (``config``, ``auth``,
    ``request_id``, ``before_request``, ...), whose rules every call below follows.
    """

    # --- Export jobs (§3.2-3.5) ---

    def list_export_jobs(
        self,
        *,
        company_id: uuid.UUID | str | None = None,
        statuses: Iterable[JobStatus | str] | None = UNFINISHED_JOB_STATUSES,
        limit: int | None = None,
    ) -> list[ExportJob]:
        """All pages of ``GET /v3/export-jobs``, sorted by ``createdAt`` then ``id`` (the order is
        undocumented, §3.2). ``statuses`` is sent repeated; None or empty means no filter."""
        params: dict[str, Any] = {}
        if company_id is not None:
            params["company_id"] = str(uuid_arg(company_id, "company_id"))
        if statuses:
            params["statuses"] = [
                refuse_unknown(JobStatus(status), "job status").value for status in statuses
            ]
        jobs = self._collect("/v3/export-jobs", params, limit, ExportJob.from_api)
        return sorted(jobs, key=lambda job: (job.created_at, str(job.id)))

    def probe_export_jobs(self, *, company_id: uuid.UUID | str | None = None) -> int:
        """One ``GET /v3/export-jobs?limit=1`` (never a second page): whether Pleo accepts this
        client's credential. Returns how many jobs the page held (0 or 1)."""
        params: dict[str, Any] = {"limit": 1}
        if company_id is not None:
            params["company_id"] = str(uuid_arg(company_id, "company_id"))
        body = self._get_json("/v3/export-jobs", params)
        items, _, _ = self._parse("GET", "/v3/export-jobs", body, read_page)
        return len(items)

    def get_export_job(self, job_id: uuid.UUID | str) -> ExportJob:
        path = f"/v3/export-jobs/{uuid_arg(job_id, 'job_id')}"
        return self._parse("GET", path, self._get_json(path), data_of(ExportJob.from_api))

    def post_export_job_event(
        self,
        job_id: uuid.UUID | str,
        event: JobEvent | str,
        *,
        failure_reason: str | None = None,
        failure_reason_type: JobFailureReasonType | str | None = None,
    ) -> None:
        """``POST /v3/export-job-events`` (§3.5; 202). Failure fields go only with ``failed``."""
        event = JobEvent(event)
        has_failure = failure_reason is not None or failure_reason_type is not None
        if has_failure and event is not JobEvent.FAILED:
            raise ValueError("failure_reason and failure_reason_type go only with 'failed'")
        body = {"jobId": str(uuid_arg(job_id, "job_id")), "event": event.value}
        if failure_reason is not None:
            body["failureReason"] = failure_reason
        if failure_reason_type is not None:
            reason_type = JobFailureReasonType(failure_reason_type)
            body["failureReasonType"] = refuse_unknown(reason_type, "failure type").value
        self._request("POST", "/v3/export-job-events", json=body, idempotent=False)

    def create_export_job(
        self,
        company_id: uuid.UUID | str,
        accounting_entry_ids: Iterable[uuid.UUID | str],
        *,
        employee_id: uuid.UUID | str | None = None,
        is_interactive: bool | None = None,
        vendor_based_bookkeeping: bool | None = None,
    ) -> ExportJob:
        """``POST /v3/export-jobs`` (§3.3). Pleo's web app creates jobs; this is for the sandbox
        and tests. 409 ``EXPORT_ALREADY_IN_PROGRESS`` raises :class:`PleoConflict`."""
        body: dict[str, Any] = {
            "companyId": str(uuid_arg(company_id, "company_id")),
            "accountingEntryIds": [
                str(uuid_arg(entry, "accounting_entry_ids")) for entry in accounting_entry_ids
            ],
        }
        if employee_id is not None:
            body["employeeId"] = str(uuid_arg(employee_id, "employee_id"))
        if is_interactive is not None:
            body["isInteractive"] = is_interactive
        if vendor_based_bookkeeping is not None:
            body["options"] = {"vendorBasedBookkeeping": vendor_based_bookkeeping}
        path = "/v3/export-jobs"
        return self._send_json("POST", path, body, data_of(ExportJob.from_api))

    # --- Export job items and export items (§3.6-3.8) ---

    def list_export_job_items(
        self,
        job_id: uuid.UUID | str,
        *,
        status: ItemStatus | str | None = None,
        limit: int | None = None,
    ) -> list[ExportJobItem]:
        """All pages of ``GET /v3/export-jobs/{jobId}/items`` (the control layer)."""
        params = (
            {} if status is None else {"status": refuse_unknown(ItemStatus(status), "status").value}
        )
        path = f"/v3/export-jobs/{uuid_arg(job_id, 'job_id')}/items"
        return self._collect(path, params, limit, ExportJobItem.from_api)

    def update_export_job_items(
        self, job_id: uuid.UUID | str, updates: Sequence[ItemUpdate]
    ) -> ItemUpdateResult:
        """One ``PUT /v3/export-jobs/{jobId}/items`` of at most ``items_batch_size`` updates
        (§3.7). Per-item problems come back in ``errors``; nothing is sent for an empty list."""
        updates = list(updates)
        if len(updates) > self.config.items_batch_size:
            raise ValueError(
                f"{len(updates)} item updates in one call; the limit is "
                f"{self.config.items_batch_size} (use update_export_job_items_in_batches)"
            )
        if not updates:
            return ItemUpdateResult()
        path = f"/v3/export-jobs/{uuid_arg(job_id, 'job_id')}/items"
        body = [update.to_api() for update in updates]
        return self._send_json("PUT", path, body, ItemUpdateResult.from_api)

    def update_export_job_items_in_batches(
        self,
        job_id: uuid.UUID | str,
        updates: Iterable[ItemUpdate],
        *,
        batch_size: int | None = None,
    ) -> ItemUpdateResult:
        """Send ``updates`` in batches and merge the results.

        A 413 halves the batch size (rounding up, down to 1) and re-sends the same updates: the
        limit is 100 in the spec but 10 on one design page (§3.7), and a 413 rejects the whole
        request. Any other error propagates with ``exc.batch`` (the updates in flight: after
        :class:`PleoOutcomeUnknown` their outcome is unknown) and ``exc.partial_result`` (the
        batches already applied).
        """
        pending = list(updates)
        size = self.config.items_batch_size if batch_size is None else batch_size
        if not 1 <= size <= self.config.items_batch_size:
            raise ValueError(f"batch_size must be between 1 and {self.config.items_batch_size}")
        result = ItemUpdateResult()
        start = 0
        while start < len(pending):
            batch = pending[start : start + size]
            try:
                outcome = self.update_export_job_items(job_id, batch)
            except PleoError as exc:
                if isinstance(exc, PleoPayloadTooLarge) and len(batch) > 1:
                    size = (len(batch) + 1) // 2
                    logger.warning(
                        "Pleo refused %d item updates as too many (413); retrying with %d",
                        len(batch),
                        size,
                    )
                    continue
                exc.batch = tuple(batch)
                exc.partial_result = result
                raise
            result = result.merged(outcome)
            start += len(batch)
        return result

    def list_export_items(
        self, job_id: uuid.UUID | str, *, limit: int | None = None
    ) -> list[ExportItem]:
        """All pages of ``GET /v3/export-items?job_id=`` (the data layer, §3.8)."""
        params = {"job_id": str(uuid_arg(job_id, "job_id"))}
        return self._collect("/v3/export-items", params, limit, ExportItem.from_api)

    # --- Webhook subscriptions (§5.4) ---

    def list_subscriptions(
        self,
        *,
        status: SubscriptionStatus | str | None = None,
        event_types: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[Subscription]:
        params: dict[str, Any] = {}
        if status is not None:
            params["status"] = SubscriptionStatus(status).value
        if event_types:
            params["event_types"] = list(event_types)
        return self._collect("/v1/subscriptions", params, limit, Subscription.from_api)

    def create_subscription(
        self,
        endpoint_url: str,
        event_types: Iterable[str],
        *,
        status: SubscriptionStatus | str = SubscriptionStatus.ACTIVE,
        custom_headers: Mapping[str, str] | None = None,
        endpoint_auth: Mapping[str, Any] | None = None,
    ) -> Subscription:
        """``POST /v1/subscriptions`` (answers 200, not 201)."""
        body = subscription_body(endpoint_url, event_types, status, custom_headers, endpoint_auth)
        path = "/v1/subscriptions"
        return self._send_json("POST", path, body, data_of(Subscription.from_api))

    def update_subscription(
        self,
        subscription_id: uuid.UUID | str,
        *,
        endpoint_url: str,
        event_types: Iterable[str],
        status: SubscriptionStatus | str = SubscriptionStatus.ACTIVE,
        custom_headers: Mapping[str, str] | None = None,
        endpoint_auth: Mapping[str, Any] | None = None,
    ) -> Subscription:
        """``PUT /v1/subscriptions/{id}``: replaces the subscription (same body as create)."""
        body = subscription_body(endpoint_url, event_types, status, custom_headers, endpoint_auth)
        path = f"/v1/subscriptions/{uuid_arg(subscription_id, 'subscription_id')}"
        return self._send_json("PUT", path, body, data_of(Subscription.from_api))

    def get_subscription(self, subscription_id: uuid.UUID | str) -> Subscription:
        path = f"/v1/subscriptions/{uuid_arg(subscription_id, 'subscription_id')}"
        return self._parse("GET", path, self._get_json(path), data_of(Subscription.from_api))

    def delete_subscription(self, subscription_id: uuid.UUID | str) -> None:
        """``DELETE /v1/subscriptions/{id}`` (204)."""
        path = f"/v1/subscriptions/{uuid_arg(subscription_id, 'subscription_id')}"
        self._request("DELETE", path, idempotent=False)

    def get_subscription_secret(self, subscription_id: uuid.UUID | str) -> str:
        """The ``whsec_`` signing secret (§5.3). Neither it nor the body is ever logged."""
        path = f"/v1/subscriptions/{uuid_arg(subscription_id, 'subscription_id')}/secret"
        return self._parse("GET", path, self._get_json(path), read_secret_key)

    # --- Pagination (§6.3) ---

    def paginate(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        limit: int | None = None,
        max_pages: int = MAX_PAGES,
    ) -> Iterator[Any]:
        """Yield every element of ``data`` over all pages of a cursor-paginated GET, following
        ``pagination.endCursor`` with ``after=`` while ``pagination.hasNextPage`` is true.

        A missing or repeated cursor while ``hasNextPage`` is true, or more than ``max_pages``
        pages, raises :class:`PleoResponseError` instead of looping forever.
        """
        for _, items in self._pages(path, params, limit, max_pages):
            yield from items

    def _pages(
        self,
        path: str,
        params: Mapping[str, Any] | None,
        limit: int | None,
        max_pages: int = MAX_PAGES,
    ) -> Iterator[tuple[int, list[Any]]]:
        query = dict(params or {})
        limit = limit if limit is not None else self.config.page_size
        if limit is not None:
            query["limit"] = limit
        seen: set[str] = set()
        for page in range(1, max_pages + 1):
            body = self._get_json(path, query)
            items, has_next, cursor = self._parse("GET", path, body, read_page)
            yield page, items
            if not has_next:
                return
            if not cursor:
                raise _page_error(path, f"page {page} has hasNextPage true but no endCursor")
            if cursor in seen:
                raise _page_error(path, f"page {page} repeats an earlier endCursor")
            seen.add(cursor)
            query["after"] = cursor
        raise _page_error(path, f"more than {max_pages} pages; giving up")

    def _collect(
        self,
        path: str,
        params: Mapping[str, Any],
        limit: int | None,
        parse: Callable[[Any, str], Any],
    ) -> list[Any]:
        results = []
        for page, items in self._pages(path, params, limit):
            with blame("GET", path):
                results += [parse(raw, f"data[{i}] (page {page})") for i, raw in enumerate(items)]
        return results


def _page_error(path: str, problem: str) -> PleoResponseError:
    return PleoResponseError(
        f"malformed response: broken pagination: {problem}", method="GET", path=path
    )


__all__ = [
    "MAX_PAGES",
    "PleoClient",
]
