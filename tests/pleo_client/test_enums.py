"""exports.pleo.enums, through the client: Pleo's answers are read generously (HTTP faked with
`responses`).

Unknown job statuses, item statuses and failure types read as the enum's UNKNOWN and keep the raw
string; ``expired`` reads as failed/job_expired; error types compare in any case; a subscription's
``eventTypes`` may be a single string. UNKNOWN is never sent back to Pleo.
"""

from __future__ import annotations

import json

import pytest

from exports.pleo import (
    ErrorType,
    ExportJob,
    ExportJobItem,
    ItemFailureReasonType,
    ItemStatus,
    ItemUpdate,
    JobFailureReasonType,
    JobStatus,
    PleoError,
    PleoUnprocessable,
    Subscription,
    error_type_is,
)
from tests import client_fakes as fakes
from tests.client_fakes import EVENTS, ITEMS, JOB, JOBS, SUBSCRIPTIONS


@pytest.fixture
def client(make_client):
    """One attempt per call: a refused answer is final at once."""
    return make_client(max_attempts=1)


# --- job and item statuses ----------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["archived", "on_hold", "unknown"])
def test_an_unknown_job_status_reads_as_unknown_and_keeps_the_raw_value(http, client, raw):
    http.get(JOB, json={"data": fakes.job_json(status=raw)})
    job = client.get_export_job(fakes.JOB_ID)
    assert job.status is JobStatus.UNKNOWN
    assert job.raw_status == raw
    assert not job.is_terminal


def test_an_unknown_status_in_a_list_does_not_make_the_list_unreadable(http, client):
    other = fakes.job_json(id=fakes.JOB_ID_2, status="archived", createdAt="2025-05-24T00:00:00Z")
    http.get(JOBS, json=fakes.page([fakes.job_json(), other]))
    jobs = client.list_export_jobs()
    assert [(j.status, j.raw_status) for j in jobs] == [
        (JobStatus.PENDING, "pending"),
        (JobStatus.UNKNOWN, "archived"),
    ]


def test_expired_reads_as_failed_with_job_expired(http, client):
    http.get(JOB, json={"data": fakes.job_json(status="expired", failureReasonType=None)})
    job = client.get_export_job(fakes.JOB_ID)
    assert job.status is JobStatus.FAILED and job.is_terminal
    assert job.raw_status == "expired"
    assert job.failure_reason_type == "job_expired"
    assert job.failure_type is JobFailureReasonType.JOB_EXPIRED


def test_expired_keeps_a_failure_type_pleo_gave(http, client):
    http.get(JOB, json={"data": fakes.job_json(status="EXPIRED", failureReasonType="odd")})
    job = client.get_export_job(fakes.JOB_ID)
    assert (job.status, job.failure_reason_type) == (JobStatus.FAILED, "odd")
    assert job.failure_type is JobFailureReasonType.UNKNOWN


def test_statuses_are_read_in_any_case(http, client):
    http.get(JOB, json={"data": fakes.job_json(status="IN_PROGRESS")})
    job = client.get_export_job(fakes.JOB_ID)
    assert job.status is JobStatus.IN_PROGRESS
    assert job.raw_status == "IN_PROGRESS"


def test_unknown_item_statuses_and_failure_types_are_kept(http, client):
    items = [
        fakes.job_item_json(1, status="on_hold"),
        fakes.job_item_json(2, status="failed", failureReasonType="erp_on_fire"),
        fakes.job_item_json(3, status="failed", failureReasonType="VENDOR_UNKNOWN"),
    ]
    http.get(ITEMS, json=fakes.page(items))
    first, second, third = client.list_export_job_items(fakes.JOB_ID)
    assert (first.status, first.raw_status) == (ItemStatus.UNKNOWN, "on_hold")
    assert (second.status, second.failure_reason_type) == (ItemStatus.FAILED, "erp_on_fire")
    assert second.failure_type is ItemFailureReasonType.UNKNOWN
    assert third.failure_type is ItemFailureReasonType.VENDOR_UNKNOWN


def test_an_unknown_item_status_in_a_put_answer_is_kept(http, client):
    answer = {"data": [fakes.job_item_json(1, status="exported")], "errors": []}
    http.put(ITEMS, json=answer)
    result = client.update_export_job_items(
        fakes.JOB_ID, [ItemUpdate.successful(fakes.entry_id(1))]
    )
    assert [(i.status, i.raw_status) for i in result.items] == [(ItemStatus.UNKNOWN, "exported")]


def test_unknown_is_never_sent_to_pleo(client):
    with pytest.raises(ValueError, match="never sent"):
        ItemUpdate(fakes.entry_id(1), ItemStatus.UNKNOWN)
    with pytest.raises(ValueError, match="never sent"):
        ItemUpdate.failed(fakes.entry_id(1), "x", ItemFailureReasonType.UNKNOWN)
    with pytest.raises(ValueError, match="never sent"):
        client.post_export_job_event(
            fakes.JOB_ID, "failed", failure_reason="x", failure_reason_type="unknown"
        )
    with pytest.raises(ValueError, match="never sent"):
        client.list_export_jobs(statuses=[JobStatus.UNKNOWN])
    with pytest.raises(ValueError, match="never sent"):
        client.list_export_job_items(fakes.JOB_ID, status=ItemStatus.UNKNOWN)


def test_a_hand_built_job_keeps_its_status_as_raw_status():
    job = ExportJob.from_api(fakes.job_json())
    assert job.raw_status == "pending"
    item = ExportJobItem.from_api(fakes.job_item_json())
    assert item.raw_status == "pending"


# --- error types ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "actual",
    [
        "INVALID_EXPORT_JOB_STATUS_CHANGE",
        "invalid_export_job_status_change",
        "Invalid_Export_Job_Status_Change",
        " invalid_export_job_status_change ",
    ],
)
def test_error_types_compare_in_any_case(actual):
    assert error_type_is(actual, ErrorType.INVALID_EXPORT_JOB_STATUS_CHANGE)
    assert PleoError("x", error_type=actual).has_type(ErrorType.INVALID_EXPORT_JOB_STATUS_CHANGE)
    assert not error_type_is(actual, ErrorType.EXPORT_JOB_STATUS_UNPROCESSABLE)


def test_error_type_comparison_needs_a_type():
    assert not error_type_is(None, ErrorType.MISSING_CONTRA_ACCOUNTS)
    assert not PleoError("x").has_type(ErrorType.MISSING_CONTRA_ACCOUNTS)


def test_a_lowercase_error_type_from_pleo_is_recognised(http, client):
    body = {"type": "invalid_export_job_status_change", "message": "Export Job status change"}
    http.post(EVENTS, status=422, json=body)
    with pytest.raises(PleoUnprocessable) as caught:
        client.post_export_job_event(fakes.JOB_ID, "started")
    assert caught.value.error_type == "invalid_export_job_status_change"  # kept as sent
    assert caught.value.has_type(ErrorType.INVALID_EXPORT_JOB_STATUS_CHANGE)


# --- subscriptions --------------------------------------------------------------------------------


def test_event_types_may_be_a_single_string(http, client):
    single = fakes.subscription_json(eventTypes="v1.export-job.created")
    http.get(f"{SUBSCRIPTIONS}/{fakes.SUBSCRIPTION_ID}", json={"data": single})
    http.get(SUBSCRIPTIONS, json=fakes.page([single]))
    assert client.get_subscription(fakes.SUBSCRIPTION_ID).event_types == ("v1.export-job.created",)
    assert [s.event_types for s in client.list_subscriptions()] == [("v1.export-job.created",)]


@pytest.mark.parametrize(
    ("extra", "carries"),
    [
        ({}, False),
        ({"customHeaders": {}, "endpointAuth": {"type": "NONE"}}, False),
        ({"customHeaders": None, "endpointAuth": None}, False),
        ({"customHeaders": {"X-Token": "t"}}, True),
        ({"endpointAuth": {"type": "BASIC", "credentials": {"username": "u"}}}, True),
        ({"endpointAuth": {"type": "basic"}}, True),
        ({"endpointAuth": {"type": "NONE", "credentials": {"token": "t"}}}, True),
    ],
)
def test_a_subscription_says_whether_pleo_holds_delivery_settings_for_it(extra, carries):
    subscription = Subscription.from_api(json.loads(json.dumps(fakes.subscription_json(**extra))))
    assert subscription.carries_delivery_settings is carries
