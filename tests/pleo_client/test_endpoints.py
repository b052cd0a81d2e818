"""exports.pleo.client: each endpoint's request (checked against Pleo's OpenAPI schemas, with
no_extra_fields, so a misspelled field fails) and parsed answer, item batches, and pagination."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
import responses

from exports import pleo
from exports.pleo import (
    ErrorType,
    ExportItem,
    ExportJob,
    ExportJobItem,
    ItemFailureReasonType,
    ItemStatus,
    ItemUpdate,
    ItemUpdateError,
    JobEvent,
    JobFailureReasonType,
    JobStatus,
    PleoConflict,
    PleoOutcomeUnknown,
    PleoPayloadTooLarge,
    PleoResponseError,
    PleoUnprocessable,
    Subscription,
    SubscriptionStatus,
)
from tests import client_fakes as fakes
from tests import secrets_registry
from tests.client_fakes import (
    EVENTS,
    EXPORT_ITEMS,
    ITEMS,
    JOB,
    JOBS,
    PUT_ITEMS_PATH,
    SUBSCRIPTION,
    SUBSCRIPTIONS,
    check_request,
    check_response,
    query,
    sent_json,
)

# --- Export jobs ----------------------------------------------------------------------------------


def test_list_export_jobs_repeats_statuses_and_sorts_oldest_first(http, client):
    newest = fakes.job_json(id=fakes.JOB_ID_2, createdAt="2025-05-24T08:00:00Z")
    oldest = fakes.job_json(status="in_progress", startedAt="2025-05-23T15:30:00Z")
    http.get(JOBS, json=fakes.page([newest, oldest]))
    jobs = client.list_export_jobs(
        company_id=uuid.UUID(fakes.COMPANY_ID), statuses=[JobStatus.PENDING, "in_progress"]
    )
    assert query(http.calls[0]) == {
        "company_id": [fakes.COMPANY_ID],
        "statuses": ["pending", "in_progress"],
    }
    assert urlsplit(http.calls[0].request.url).path == "/v3/export-jobs"
    assert http.calls[0].request.method == "GET"
    assert [str(job.id) for job in jobs] == [fakes.JOB_ID, fakes.JOB_ID_2]
    assert jobs[0].status is JobStatus.IN_PROGRESS
    assert jobs[0].started_at == datetime(2025, 5, 23, 15, 30, tzinfo=UTC)


def test_list_export_jobs_defaults_to_unfinished_and_none_means_no_filter(http, client):
    http.get(JOBS, json=fakes.page([]))
    assert client.list_export_jobs() == []
    assert client.list_export_jobs(statuses=None, limit=50) == []
    assert query(http.calls[0]) == {"statuses": ["pending", "in_progress"]}
    assert query(http.calls[1]) == {"limit": ["50"]}


def test_list_export_jobs_ties_are_broken_by_id(http, client):
    second = fakes.job_json(id=fakes.JOB_ID_2)
    first = fakes.job_json()
    http.get(JOBS, json=fakes.page([second, first]))
    assert [str(job.id) for job in client.list_export_jobs()] == [fakes.JOB_ID, fakes.JOB_ID_2]


def test_get_export_job_parses_every_field(http, client):
    raw = fakes.job_json(
        status="failed",
        startedAt="2025-05-23T15:30:00Z",
        completedAt="2025-05-23T15:40:00+00:00",
        expiredAt="2025-05-23T16:40:00Z",
        failureReason="ERP down",
        failureReasonType="accounting_system_unreachable",
        vendorBasedBookkeeping=True,
    )
    http.get(JOB, json={"data": raw})
    job = client.get_export_job(fakes.JOB_ID)
    assert job == ExportJob(
        id=uuid.UUID(fakes.JOB_ID),
        company_id=uuid.UUID(fakes.COMPANY_ID),
        status=JobStatus.FAILED,
        created_at=datetime(2025, 5, 23, 15, 21, 32, tzinfo=UTC),
        expires_in=3600,
        is_interactive=True,
        number_of_items=2,
        vendor_based_bookkeeping=True,
        created_by=uuid.UUID("0b1c2d3e-0000-4000-8000-00000000000b"),
        started_at=datetime(2025, 5, 23, 15, 30, tzinfo=UTC),
        last_updated_at=datetime(2025, 5, 23, 15, 21, 32, tzinfo=UTC),
        completed_at=datetime(2025, 5, 23, 15, 40, tzinfo=UTC),
        expired_at=datetime(2025, 5, 23, 16, 40, tzinfo=UTC),
        failure_reason="ERP down",
        failure_reason_type="accounting_system_unreachable",
    )
    assert job.raw == raw
    assert job.is_terminal
    assert job.created_at.tzinfo is not None
    assert job.failure_reason_type == JobFailureReasonType.ACCOUNTING_SYSTEM_UNREACHABLE


def test_job_without_offset_is_read_as_utc_and_optional_fields_may_be_absent(http, client):
    raw = {
        key: value
        for key, value in fakes.job_json(createdAt="2025-05-23T15:21:32").items()
        if key not in {"createdBy", "lastUpdatedAt", "failureReason"}
    }
    http.get(JOB, json={"data": raw})
    job = client.get_export_job(fakes.JOB_ID)
    assert job.created_at == datetime(2025, 5, 23, 15, 21, 32, tzinfo=UTC)
    assert job.created_by is None and job.last_updated_at is None
    assert not job.is_terminal


def test_post_started_event(http, client):
    http.post(EVENTS, status=202)
    assert client.post_export_job_event(fakes.JOB_ID, JobEvent.STARTED) is None
    call = http.calls[0]
    assert call.request.method == "POST"
    assert sent_json(call) == {"jobId": fakes.JOB_ID, "event": "started"}
    check_request(sent_json(call), "POST", "/v3/export-job-events")


def test_post_failed_event_with_reason(http, client):
    http.post(EVENTS, status=202)
    client.post_export_job_event(
        fakes.JOB_ID,
        "failed",
        failure_reason="Failed to reach the Accounting System.",
        failure_reason_type=JobFailureReasonType.ACCOUNTING_SYSTEM_UNREACHABLE,
    )
    body = sent_json(http.calls[0])
    assert body == {
        "jobId": fakes.JOB_ID,
        "event": "failed",
        "failureReason": "Failed to reach the Accounting System.",
        "failureReasonType": "accounting_system_unreachable",
    }
    check_request(body, "POST", "/v3/export-job-events")


def test_event_arguments_are_checked_before_any_http(http, client):
    with pytest.raises(ValueError, match="only with 'failed'"):
        client.post_export_job_event(fakes.JOB_ID, "completed", failure_reason="x")
    with pytest.raises(ValueError):
        client.post_export_job_event(fakes.JOB_ID, "canceled")
    with pytest.raises(ValueError):
        client.post_export_job_event(
            fakes.JOB_ID, "failed", failure_reason_type="accounting_system_validation_failure"
        )
    with pytest.raises(ValueError, match="job_id must be a UUID"):
        client.post_export_job_event("../../v1/subscriptions", "started")
    assert len(http.calls) == 0


def test_create_export_job(http, client):
    http.post(JOBS, status=201, json={"data": fakes.job_json()})
    job = client.create_export_job(
        fakes.COMPANY_ID,
        [fakes.entry_id(1), uuid.UUID(fakes.entry_id(2))],
        employee_id="0b1c2d3e-0000-4000-8000-00000000000b",
        is_interactive=False,
        vendor_based_bookkeeping=True,
    )
    assert job.id == uuid.UUID(fakes.JOB_ID)
    body = sent_json(http.calls[0])
    assert body == {
        "companyId": fakes.COMPANY_ID,
        "accountingEntryIds": [fakes.entry_id(1), fakes.entry_id(2)],
        "employeeId": "0b1c2d3e-0000-4000-8000-00000000000b",
        "isInteractive": False,
        "options": {"vendorBasedBookkeeping": True},
    }
    check_request(body, "POST", "/v3/export-jobs")


def test_create_export_job_conflict(http, client):
    http.post(
        JOBS,
        status=409,
        json={"type": "EXPORT_ALREADY_IN_PROGRESS", "message": "Export Job already in progress."},
    )
    with pytest.raises(PleoConflict) as caught:
        client.create_export_job(fakes.COMPANY_ID, [fakes.entry_id(1)])
    assert caught.value.error_type == ErrorType.EXPORT_ALREADY_IN_PROGRESS
    assert sent_json(http.calls[0]) == {
        "companyId": fakes.COMPANY_ID,
        "accountingEntryIds": [fakes.entry_id(1)],
    }
    assert len(http.calls) == 1


# --- Items ----------------------------------------------------------------------------------------


def test_list_export_job_items_with_status_over_pages(http, client):
    done = fakes.job_item_json(
        2,
        status="successful",
        exportedAt="2025-05-23T16:00:00Z",
        externalId="V-1",
        externalUrl="https://erp.example/V-1",
    )
    http.get(ITEMS, json=fakes.page([fakes.job_item_json(1)], next_cursor="CURSORA"))
    http.get(ITEMS, json=fakes.page([done]))
    items = client.list_export_job_items(fakes.JOB_ID, status=ItemStatus.PENDING, limit=1)
    assert query(http.calls[0]) == {"status": ["pending"], "limit": ["1"]}
    assert query(http.calls[1]) == {"status": ["pending"], "limit": ["1"], "after": ["CURSORA"]}
    assert [item.accounting_entry_id for item in items] == [
        uuid.UUID(fakes.entry_id(1)),
        uuid.UUID(fakes.entry_id(2)),
    ]
    assert items[1] == ExportJobItem(
        accounting_entry_id=uuid.UUID(fakes.entry_id(2)),
        export_job_id=uuid.UUID(fakes.JOB_ID),
        status=ItemStatus.SUCCESSFUL,
        exported_at=datetime(2025, 5, 23, 16, 0, tzinfo=UTC),
        external_id="V-1",
        external_url="https://erp.example/V-1",
    )
    assert items[0].raw == fakes.job_item_json(1)


def test_list_export_items(http, client):
    raw = fakes.export_item_json(1)
    http.get(EXPORT_ITEMS, json=fakes.page([raw]))
    items = client.list_export_items(uuid.UUID(fakes.JOB_ID))
    assert query(http.calls[0]) == {"job_id": [fakes.JOB_ID]}
    assert items == [
        ExportItem(
            accounting_entry_id=uuid.UUID(fakes.entry_id(1)),
            company_id=uuid.UUID(fakes.COMPANY_ID),
            date=datetime(2025, 5, 20, tzinfo=UTC),
            type="card_purchase",
        )
    ]
    assert items[0].raw == raw
    assert items[0].raw["accountingEntryLines"][0]["lineAmount"]["inWalletCurrency"]["value"]


def test_update_export_job_items_body_and_result(http, client):
    exported = datetime(2025, 5, 23, 18, 0, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    updates = [
        ItemUpdate.successful(
            fakes.entry_id(1), exported_at=exported, external_id="V-1", external_url="https://e/1"
        ),
        ItemUpdate.failed(
            uuid.UUID(fakes.entry_id(2)), "Vendor blocked in the ERP", "vendor_unknown"
        ),
        ItemUpdate(fakes.entry_id(3), "successful"),
    ]
    answer = {
        "data": [
            fakes.job_item_json(1, status="successful", exportedAt="2025-05-23T16:00:05Z"),
            fakes.job_item_json(
                2,
                status="failed",
                failureReason="Vendor blocked in the ERP",
                failureReasonType="vendor_unknown",
            ),
        ],
        "errors": [
            {
                "accountingEntryId": fakes.entry_id(3),
                "type": "ACCOUNTING_ENTRY_DOES_NOT_EXIST",
                "message": "No such entry",
            }
        ],
    }
    check_response(answer, "PUT", PUT_ITEMS_PATH)
    http.put(ITEMS, json=answer)
    result = client.update_export_job_items(fakes.JOB_ID, updates)
    body = sent_json(http.calls[0])
    assert http.calls[0].request.method == "PUT"
    assert body == [
        {
            "accountingEntryId": fakes.entry_id(1),
            "status": "successful",
            "exportedAt": "2025-05-23T16:00:05Z",
            "externalId": "V-1",
            "externalUrl": "https://e/1",
        },
        {
            "accountingEntryId": fakes.entry_id(2),
            "status": "failed",
            "failureReason": "Vendor blocked in the ERP",
            "failureReasonType": "vendor_unknown",
        },
        {"accountingEntryId": fakes.entry_id(3), "status": "successful"},
    ]
    check_request(body, "PUT", PUT_ITEMS_PATH)
    assert [item.status for item in result.items] == [ItemStatus.SUCCESSFUL, ItemStatus.FAILED]
    assert result.items[1].failure_reason_type == ItemFailureReasonType.VENDOR_UNKNOWN
    assert result.errors == [
        ItemUpdateError(
            uuid.UUID(fakes.entry_id(3)), ErrorType.ACCOUNTING_ENTRY_DOES_NOT_EXIST, "No such entry"
        )
    ]


def test_update_above_batch_limit_raises_without_http(http, make_client):
    client = make_client(items_batch_size=3)
    updates = [ItemUpdate.successful(fakes.entry_id(n)) for n in range(4)]
    with pytest.raises(ValueError, match="limit is 3"):
        client.update_export_job_items(fakes.JOB_ID, updates)
    assert client.update_export_job_items(fakes.JOB_ID, []) == pleo.ItemUpdateResult()
    assert len(http.calls) == 0


# --- Batches --------------------------------------------------------------------------------------


def _updates(count: int) -> list[ItemUpdate]:
    return [ItemUpdate.successful(fakes.entry_id(n)) for n in range(count)]


def _echo_items(request):
    body = json.loads(request.body)
    data = [
        fakes.job_item_json(0, accountingEntryId=u["accountingEntryId"], status=u["status"])
        for u in body
    ]
    return 200, {}, json.dumps({"data": data, "errors": []})


def test_batches_are_sent_in_order_and_merged(http, make_client):
    client = make_client(items_batch_size=4)
    http.add_callback(responses.PUT, ITEMS, callback=_echo_items)
    result = client.update_export_job_items_in_batches(fakes.JOB_ID, _updates(10))
    assert [len(sent_json(call)) for call in http.calls] == [4, 4, 2]
    assert [str(item.accounting_entry_id) for item in result.items] == [
        fakes.entry_id(n) for n in range(10)
    ]
    assert client.update_export_job_items_in_batches(fakes.JOB_ID, []).items == []
    with pytest.raises(ValueError):
        client.update_export_job_items_in_batches(fakes.JOB_ID, _updates(1), batch_size=5)


def test_batch_size_halves_on_413(http, make_client, caplog):
    client = make_client(items_batch_size=8)
    too_large = {
        "type": "EXPORT_JOB_ITEMS_UPDATE_LIMIT",
        "message": "Number of items is more than 2.",
    }

    def limit_two(request):
        if len(json.loads(request.body)) > 2:
            return 413, {}, json.dumps(too_large)
        return _echo_items(request)

    http.add_callback(responses.PUT, ITEMS, callback=limit_two)
    result = client.update_export_job_items_in_batches(fakes.JOB_ID, _updates(7))
    assert [len(sent_json(call)) for call in http.calls] == [7, 4, 2, 2, 2, 1]
    assert [str(item.accounting_entry_id) for item in result.items] == [
        fakes.entry_id(n) for n in range(7)
    ]
    assert "413" in caplog.text


def test_413_at_batch_size_one_propagates(http, client):
    http.put(ITEMS, status=413, json={"type": "EXPORT_JOB_ITEMS_UPDATE_LIMIT", "message": "no"})
    updates = _updates(2)
    with pytest.raises(PleoPayloadTooLarge) as caught:
        client.update_export_job_items_in_batches(fakes.JOB_ID, updates)
    assert [len(sent_json(call)) for call in http.calls] == [2, 1]
    assert caught.value.batch == (updates[0],)


def test_outcome_unknown_mid_way_carries_the_batch_in_flight(http, make_client, sleeps):
    client = make_client(items_batch_size=2)
    http.add_callback(responses.PUT, ITEMS, callback=_echo_items)
    http.put(ITEMS, body=fakes.read_timeout())
    updates = _updates(5)
    # the first registration answers once, then the read timeout repeats
    with pytest.raises(PleoOutcomeUnknown) as caught:
        client.update_export_job_items_in_batches(fakes.JOB_ID, updates)
    assert caught.value.batch == tuple(updates[2:4])
    assert [str(i.accounting_entry_id) for i in caught.value.partial_result.items] == [
        fakes.entry_id(0),
        fakes.entry_id(1),
    ]
    assert len(http.calls) == 2
    assert sleeps == []


def test_unprocessable_mid_way_also_carries_the_batch(http, make_client):
    client = make_client(items_batch_size=2)
    http.put(
        ITEMS,
        status=422,
        json={"type": "EXPORT_JOB_STATUS_UNPROCESSABLE", "message": "Export job is finished."},
    )
    updates = _updates(3)
    with pytest.raises(PleoUnprocessable) as caught:
        client.update_export_job_items_in_batches(fakes.JOB_ID, updates)
    assert caught.value.batch == tuple(updates[:2])
    assert caught.value.partial_result.items == []
    assert caught.value.error_type == ErrorType.EXPORT_JOB_STATUS_UNPROCESSABLE


# --- Subscriptions --------------------------------------------------------------------------------


def test_list_subscriptions(http, client):
    http.get(SUBSCRIPTIONS, json=fakes.page([fakes.subscription_json()]))
    subscriptions = client.list_subscriptions(
        status="ACTIVE", event_types=["v1.export-job.created", "v1.vendor.created"]
    )
    assert query(http.calls[0]) == {
        "status": ["ACTIVE"],
        "event_types": ["v1.export-job.created", "v1.vendor.created"],
    }
    assert subscriptions == [
        Subscription(
            id=uuid.UUID(fakes.SUBSCRIPTION_ID),
            endpoint_url="https://bridge.example/webhook/abc",
            event_types=("v1.export-job.created",),
            status=SubscriptionStatus.ACTIVE,
            created_at=datetime(2022, 1, 1, tzinfo=UTC),
            updated_at=datetime(2022, 1, 10, tzinfo=UTC),
        )
    ]


def test_create_subscription(http, client):
    http.post(SUBSCRIPTIONS, status=200, json={"data": fakes.subscription_json()})
    created = client.create_subscription(
        "https://bridge.example/webhook/abc",
        [pleo.WebhookEventType.EXPORT_JOB_CREATED, "v1.export-job.created"],
        custom_headers={"X-Bridge": "1"},
        endpoint_auth={"type": "NONE"},
    )
    assert created.id == uuid.UUID(fakes.SUBSCRIPTION_ID)
    body = sent_json(http.calls[0])
    assert body == {
        "endpointUrl": "https://bridge.example/webhook/abc",
        "eventTypes": ["v1.export-job.created"],
        "status": "ACTIVE",
        "customHeaders": {"X-Bridge": "1"},
        "endpointAuth": {"type": "NONE"},
    }
    check_request(body, "POST", "/v1/subscriptions")
    with pytest.raises(ValueError):
        client.create_subscription("https://x", [])


def test_update_get_delete_subscription(http, client):
    http.put(SUBSCRIPTION, json={"data": fakes.subscription_json(status="INACTIVE")})
    http.get(SUBSCRIPTION, json={"data": fakes.subscription_json()})
    http.delete(SUBSCRIPTION, status=204)
    updated = client.update_subscription(
        fakes.SUBSCRIPTION_ID,
        endpoint_url="https://bridge.example/webhook/abc",
        event_types=["v1.export-job.created"],
        status=SubscriptionStatus.INACTIVE,
    )
    assert updated.status is SubscriptionStatus.INACTIVE
    body = sent_json(http.calls[0])
    assert http.calls[0].request.method == "PUT"
    assert body == {
        "endpointUrl": "https://bridge.example/webhook/abc",
        "eventTypes": ["v1.export-job.created"],
        "status": "INACTIVE",
    }
    check_request(body, "PUT", "/v1/subscriptions/{id}")
    assert client.get_subscription(fakes.SUBSCRIPTION_ID).status is SubscriptionStatus.ACTIVE
    assert client.delete_subscription(fakes.SUBSCRIPTION_ID) is None
    assert [call.request.method for call in http.calls] == ["PUT", "GET", "DELETE"]


def test_get_subscription_secret(http, client):
    secret = secrets_registry.register("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
    http.get(f"{SUBSCRIPTION}/secret", json={"data": {"secretKey": secret}})
    check_response({"data": {"secretKey": secret}}, "GET", "/v1/subscriptions/{id}/secret")
    assert client.get_subscription_secret(fakes.SUBSCRIPTION_ID) == secret


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": {"secretKey": "whsec_TRUNCATEDSECRET',
        b'{"data": {"secretKey": 12345}}',
        b'{"data": {}}',
    ],
)
def test_malformed_secret_response_never_quotes_the_body(http, client, body, caplog):
    http.get(f"{SUBSCRIPTION}/secret", body=body, content_type="application/json")
    with pytest.raises(PleoResponseError) as caught:
        client.get_subscription_secret(fakes.SUBSCRIPTION_ID)
    assert "TRUNCATEDSECRET" not in str(caught.value) and "12345" not in str(caught.value)
    assert "secretKey" in str(caught.value) or "JSON" in str(caught.value)
    assert "TRUNCATEDSECRET" not in caplog.text


# --- Pagination -----------------------------------------------------------------------------------


def test_pagination_follows_end_cursor_until_the_last_page(http, client):
    http.get(JOBS, json=fakes.page([fakes.job_json()], next_cursor="AAAA"))
    http.get(JOBS, json=fakes.page([], next_cursor="BBBB"))
    http.get(JOBS, json=fakes.page([fakes.job_json(id=fakes.JOB_ID_2)]))
    jobs = client.list_export_jobs(statuses=[JobStatus.PENDING], limit=1)
    assert [query(call).get("after") for call in http.calls] == [None, ["AAAA"], ["BBBB"]]
    assert all(query(call)["limit"] == ["1"] for call in http.calls)
    assert all(query(call)["statuses"] == ["pending"] for call in http.calls)
    assert len(jobs) == 2


@pytest.mark.parametrize(
    ("cursors", "calls"),
    [
        (["AAAA", "AAAA"], 2),  # the next page hands back the cursor we just sent
        (["AAAA", "BBBB", "AAAA"], 3),  # a cycle
    ],
)
def test_repeated_cursor_is_a_response_error(http, client, cursors, calls):
    for cursor in cursors:
        http.get(JOBS, json=fakes.page([fakes.job_json()], next_cursor=cursor))
    with pytest.raises(PleoResponseError, match="repeats an earlier endCursor") as caught:
        client.list_export_jobs()
    assert len(http.calls) == calls
    assert (caught.value.method, caught.value.path) == ("GET", "/v3/export-jobs")


def test_missing_cursor_while_has_next_page_is_a_response_error(http, client):
    body = fakes.page([fakes.job_json()], next_cursor="AAAA")
    del body["pagination"]["endCursor"]
    http.get(JOBS, json=body)
    with pytest.raises(PleoResponseError, match="no endCursor"):
        client.list_export_jobs()
    assert len(http.calls) == 1


def test_page_limit_stops_an_endless_listing(http, client):
    counter = iter(range(100))

    def endless(request):
        body = fakes.page([fakes.job_item_json()], next_cursor=f"C{next(counter)}")
        return 200, {}, json.dumps(body)

    http.add_callback(responses.GET, ITEMS, callback=endless)
    path = f"/v3/export-jobs/{fakes.JOB_ID}/items"
    with pytest.raises(PleoResponseError, match="more than 3 pages"):
        list(client.paginate(path, max_pages=3))
    assert len(http.calls) == 3
    assert pleo.MAX_PAGES == 10_000


def test_paginate_yields_raw_items(http, client):
    http.get(ITEMS, json=fakes.page([fakes.job_item_json(1)], next_cursor="AAAA"))
    http.get(ITEMS, json=fakes.page([fakes.job_item_json(2)]))
    path = f"/v3/export-jobs/{fakes.JOB_ID}/items"
    assert list(client.paginate(path, params={"status": "pending"})) == [
        fakes.job_item_json(1),
        fakes.job_item_json(2),
    ]


def test_get_json_returns_the_raw_body_under_the_same_rules(http, client, sleeps):
    raw = {"data": fakes.job_json(status="not-a-status"), "extra": [1]}
    http.get(JOB, status=503)
    http.get(JOB, json=raw)
    assert client.get_json(f"/v3/export-jobs/{fakes.JOB_ID}") == raw  # unparsed, retried once
    assert len(sleeps) == 1


def test_page_size_is_sent_as_the_limit_of_list_calls_that_give_none(http, make_client):
    client = make_client(page_size=100)
    http.get(JOBS, json=fakes.page([fakes.job_json()]))
    http.get(SUBSCRIPTIONS, json=fakes.page([]))
    client.list_export_jobs()
    client.list_subscriptions(limit=5)
    assert query(http.calls[0])["limit"] == ["100"]
    assert query(http.calls[1])["limit"] == ["5"]
