"""Job items (control layer) and export items (data layer) over real HTTP."""

import uuid

import pytest
import requests

from pleo_sandbox.server import SandboxServer
from tests.openapi_schemas import (
    PLEO_TIMESTAMP_RE,
    enum_values,
    schema,
    validate,
    validate_request_body,
    validate_response,
)
from tests.sandbox.helpers import assert_error

ITEMS_PATH = "/v3/export-jobs/{jobId}/items"
ITEM_FIELDS = set(schema("ExportJobItemV3")["properties"])


def started_job(sb, items=3, **kw) -> tuple[str, list[str]]:
    job = sb.state.create_job(sb.company.id, items, **kw)
    assert sb.api.event(job["id"], "started").status_code == 202
    entries = [i["accountingEntryId"] for i in sb.state.get_job(job["id"])["items"]]
    return job["id"], entries


# -- GET /v3/export-jobs/{jobId}/items ------------------------------------------------------------
def test_fresh_items_have_every_field_null(sb):
    job = sb.state.create_job(sb.company.id, 3)
    response = sb.api.get(f"/v3/export-jobs/{job['id']}/items")
    assert response.status_code == 200
    body = response.json()
    validate(body, "CursorPaginatedResponseExportJobItemV3", no_extra_fields=True)
    validate_response(body, "GET", ITEMS_PATH, 200)
    assert len(body["data"]) == 3 and body["pagination"]["total"] == 3
    for item in body["data"]:
        assert set(item) == ITEM_FIELDS
        assert item["exportJobId"] == job["id"]
        assert item["status"] == "pending"
        optional = ITEM_FIELDS - {"accountingEntryId", "exportJobId", "status"}
        assert all(item[name] is None for name in optional), item


def test_items_status_filter_and_404(sb):
    job_id, entries = started_job(sb, 3)
    update = [{"accountingEntryId": entries[1], "status": "failed"}]
    assert sb.api.put(f"/v3/export-jobs/{job_id}/items", json=update).status_code == 200
    failed = sb.api.get(f"/v3/export-jobs/{job_id}/items", params={"status": "failed"}).json()
    assert [i["accountingEntryId"] for i in failed["data"]] == [entries[1]]
    assert failed["pagination"]["currentRequestPagination"]["parameters"] == {"status": ["failed"]}
    pending = sb.api.get(f"/v3/export-jobs/{job_id}/items", params={"status": "pending"}).json()
    assert [i["accountingEntryId"] for i in pending["data"]] == [entries[0], entries[2]]
    bad = sb.api.get(f"/v3/export-jobs/{job_id}/items", params={"status": "done"})
    assert bad.status_code == 400
    missing = sb.api.get(f"/v3/export-jobs/{uuid.uuid4()}/items")
    assert missing.status_code == 404
    assert missing.json() == {"type": "EXPORT_NOT_FOUND", "message": "Export job not found."}


# -- PUT /v3/export-jobs/{jobId}/items ------------------------------------------------------------
def test_update_items_partial_success(sb):
    job_id, entries = started_job(sb, 3)
    unknown = str(uuid.uuid4())
    body = [
        {
            "accountingEntryId": entries[0],
            "status": "successful",
            "externalId": "JE-1001",
            "externalUrl": "https://erp.example/je/1001",
            "exportedAt": "2025-05-23T15:21:32Z",
        },
        {
            "accountingEntryId": entries[1],
            "status": "failed",
            "failureReason": "Account 4010 does not exist in the ERP.",
            "failureReasonType": "account_unknown",
        },
        {"accountingEntryId": unknown, "status": "successful"},
    ]
    validate_request_body(body, "PUT", ITEMS_PATH)
    response = sb.api.put(f"/v3/export-jobs/{job_id}/items", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    validate(result, "ExportJobItemUpdateV3", no_extra_fields=True)
    validate_response(result, "PUT", ITEMS_PATH, 200)
    ok, failed = result["data"]
    assert (ok["status"], ok["externalId"], ok["externalUrl"], ok["exportedAt"]) == (
        "successful",
        "JE-1001",
        "https://erp.example/je/1001",
        "2025-05-23T15:21:32Z",
    )
    assert (failed["status"], failed["failureReasonType"]) == ("failed", "account_unknown")
    assert failed["failureReasonType"] in enum_values("ExportJobItemFailureReasonType")
    assert result["errors"] == [
        {
            "accountingEntryId": unknown,
            "message": "Accounting entry does not exist.",
            "type": "ACCOUNTING_ENTRY_DOES_NOT_EXIST",
        }
    ]
    listed = sb.api.get(f"/v3/export-jobs/{job_id}/items").json()["data"]
    assert [i["status"] for i in listed] == ["successful", "failed", "pending"]
    assert sb.state.get_job(job_id)["itemUpdates"][0]["errors"] == [unknown]


def test_update_items_limit(sb):
    job_id, entries = started_job(sb, 100)
    hundred = [{"accountingEntryId": e, "status": "successful"} for e in entries]
    assert sb.api.put(f"/v3/export-jobs/{job_id}/items", json=hundred).status_code == 200
    too_many = hundred + [{"accountingEntryId": str(uuid.uuid4()), "status": "successful"}]
    response = sb.api.put(f"/v3/export-jobs/{job_id}/items", json=too_many)
    assert_error(
        response,
        413,
        "EXPORT_JOB_ITEMS_UPDATE_LIMIT",
        "Number of items to update is more than 100.",
        "PUT",
        ITEMS_PATH,
    )


@pytest.mark.parametrize("final", ["completed", "completed_with_errors", "failed"])
def test_update_items_on_finished_job(sb, final):
    job_id, entries = started_job(sb, 1)
    assert sb.api.event(job_id, final).status_code == 202
    body = [{"accountingEntryId": entries[0], "status": "successful"}]
    response = sb.api.put(f"/v3/export-jobs/{job_id}/items", json=body)
    assert_error(
        response,
        422,
        "EXPORT_JOB_STATUS_UNPROCESSABLE",
        "Export job is finished.",
        "PUT",
        ITEMS_PATH,
    )


def test_update_items_on_pending_job_switch(sb):
    job = sb.state.create_job(sb.company.id, 1)
    entry = sb.state.get_job(job["id"])["items"][0]["accountingEntryId"]
    body = [{"accountingEntryId": entry, "status": "in_progress"}]
    refused = sb.api.put(f"/v3/export-jobs/{job['id']}/items", json=body)
    assert refused.status_code == 422
    assert refused.json()["type"] == "EXPORT_JOB_STATUS_UNPROCESSABLE"
    sb.state.set_switches(item_updates_on_pending="accept")
    accepted = sb.api.put(f"/v3/export-jobs/{job['id']}/items", json=body)
    assert accepted.status_code == 200
    assert accepted.json()["data"][0]["status"] == "in_progress"
    assert sb.api.job(job["id"])["status"] == "pending"


def test_update_items_refreshes_last_updated_at(sb):
    job_id, entries = started_job(sb, 2)
    started = sb.api.job(job_id)["lastUpdatedAt"]
    sb.state.advance_clock(600)
    body = [{"accountingEntryId": entries[0], "status": "successful"}]
    assert sb.api.put(f"/v3/export-jobs/{job_id}/items", json=body).status_code == 200
    refreshed = sb.api.job(job_id)["lastUpdatedAt"]
    assert PLEO_TIMESTAMP_RE.match(refreshed) and refreshed > started


@pytest.mark.parametrize(
    "body",
    [
        {"accountingEntryId": "E", "status": "successful"},
        [{"status": "successful"}],
        [{"accountingEntryId": "E", "status": "done"}],
        [{"accountingEntryId": "E", "status": "failed", "failureReasonType": "because"}],
        [{"accountingEntryId": "E", "status": "successful", "exportedAt": "yesterday"}],
        ["E"],
    ],
)
def test_update_items_invalid_body(sb, body):
    job_id, entries = started_job(sb, 1)

    def fill(value):
        if isinstance(value, dict):
            return {k: (entries[0] if v == "E" else v) for k, v in value.items()}
        if isinstance(value, list):
            return [
                fill(v) if isinstance(v, dict) else (entries[0] if v == "E" else v) for v in value
            ]
        return value

    response = sb.api.put(f"/v3/export-jobs/{job_id}/items", json=fill(body))
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "BAD_REQUEST"
    assert sb.state.get_job(job_id)["items"][0]["status"] == "pending"


def test_update_items_unknown_job(sb):
    body = [{"accountingEntryId": str(uuid.uuid4()), "status": "successful"}]
    response = sb.api.put(f"/v3/export-jobs/{uuid.uuid4()}/items", json=body)
    assert response.status_code == 404
    validate_response(response.json(), "PUT", ITEMS_PATH, 404)


# -- GET /v3/export-items -----------------------------------------------------------------------
MIX = {"normal": 4, "foreign": 4, "refund": 2, "missing_account": 1, "missing_contra": 1}


def fetch_export_items(sb, job_id: str) -> list[dict]:
    response = sb.api.get("/v3/export-items", params={"job_id": job_id, "limit": 100})
    assert response.status_code == 200, response.text
    body = response.json()
    validate(
        body, "CursorPaginatedResponseExportItemV3", spec="export-items-v3", no_extra_fields=True
    )
    validate_response(body, "GET", "/v3/export-items", 200)
    return body["data"]


def money_sum(moneys: list[dict]) -> tuple[str, int]:
    currencies = {m["currency"] for m in moneys}
    assert len(currencies) == 1, currencies
    return currencies.pop(), sum(m["value"] for m in moneys)


def test_export_items_schema_and_amounts_add_up(sb):
    job = sb.state.create_job(sb.company.id, MIX, vendor_based_bookkeeping=True)
    items = fetch_export_items(sb, job["id"])
    kinds = {i["accountingEntryId"]: i["kind"] for i in sb.state.get_job(job["id"])["items"]}
    assert len(items) == sum(MIX.values())
    seen_multi_line = False
    for item in items:
        kind = kinds[item["accountingEntryId"]]
        assert item["companyId"] == sb.company.id
        assert item["amount"]["inWalletCurrency"]["currency"] == "DKK"
        lines = item["accountingEntryLines"]
        seen_multi_line |= len(lines) > 1
        for currency in ("inSupplierCurrency", "inWalletCurrency"):
            for line in lines:
                net, tax, gross = (
                    line["netAmount"][currency],
                    line["tax"]["amount"][currency],
                    line["lineAmount"][currency],
                )
                assert net["currency"] == tax["currency"] == gross["currency"]
                assert net["value"] + tax["value"] == gross["value"], (kind, line)
                # Tax-inclusive amounts: the tax is rate / (1 + rate) of the gross, rounded.
                rate = line["tax"]["rate"]
                assert abs(tax["value"] - gross["value"] * rate / (1 + rate)) <= 0.5 + 1e-9
                assert all(isinstance(m["value"], int) for m in (net, tax, gross))
            assert money_sum([line["lineAmount"][currency] for line in lines]) == (
                item["amount"][currency]["currency"],
                item["amount"][currency]["value"],
            ), (kind, currency)
        supplier = item["amount"]["inSupplierCurrency"]
        wallet = item["amount"]["inWalletCurrency"]
        if kind == "foreign":
            assert supplier["currency"] != wallet["currency"]
            rate = wallet["value"] / supplier["value"]
            assert 0.05 < rate < 20 and rate != 1
        else:
            assert supplier == wallet
        if kind == "refund":
            assert item["type"] == "refund"
            assert wallet["value"] < 0 and all(
                line["lineAmount"]["inWalletCurrency"]["value"] < 0 for line in lines
            )
        else:
            assert wallet["value"] > 0
        assert all(line["account"] is None for line in lines) == (kind == "missing_account")
        assert (item["contraAccount"] is None) == (kind == "missing_contra")
        assert item["vendor"] is not None and item["bookkeeping"]["method"] != "none"
        for link in ("web", "mobile", "api"):
            assert item["_links"][link]["exportItem"]
    assert seen_multi_line, "the mix should include a split (multi-line) entry"


def test_export_items_are_deterministic_for_a_seed():
    def snapshot(seed):
        with SandboxServer(seed=seed) as server:
            company = server.state.add_company()
            job = server.state.create_job(company.id, MIX)
            items = server.state.export_items(job["id"])
        for item in items:
            item.pop("_links")
            for f in item["files"]:
                f.pop("url")
        return items

    assert snapshot(11) == snapshot(11)
    assert snapshot(11) != snapshot(12)


def test_export_items_files_download_and_expire(sb):
    job = sb.state.create_job(sb.company.id, 12)
    items = fetch_export_items(sb, job["id"])
    files = [f for i in items for f in i["files"]]
    assert files, "some items carry receipts"
    for f in files[:3]:
        content = requests.get(f["url"], timeout=5)
        assert content.status_code == 200
        assert len(content.content) == f["size"]
        assert content.headers["Content-Type"] == f["type"]
    sb.state.advance_clock(24 * 3600 + 1)
    # Expiry of the job itself is not the point here; the URL is dead after 24 h.
    assert requests.get(files[0]["url"], timeout=5).status_code == 403


@pytest.mark.parametrize("final", ["completed", "failed"])
def test_export_items_of_finished_job_are_422(sb, final):
    job_id, _ = started_job(sb, 1)
    sb.api.event(job_id, final)
    response = sb.api.get("/v3/export-items", params={"job_id": job_id})
    assert_error(
        response,
        422,
        "EXPORT_JOB_STATUS_UNPROCESSABLE",
        "Export Job is finished and can no longer be processed.",
        "GET",
        "/v3/export-items",
    )


def test_export_items_unknown_job_and_missing_contra_accounts(sb):
    assert sb.api.get("/v3/export-items", params={"job_id": str(uuid.uuid4())}).status_code == 404
    job = sb.state.create_job(sb.company.id, 1)
    sb.state.update_company(sb.company.id, contra_accounts_configured=False)
    response = sb.api.get("/v3/export-items", params={"job_id": job["id"]})
    assert response.status_code == 400
    assert response.json()["type"] == "MISSING_CONTRA_ACCOUNTS"
    validate_response(response.json(), "GET", "/v3/export-items", 400)


def test_export_items_paginate(sb):
    job = sb.state.create_job(sb.company.id, 5)
    first = sb.api.get("/v3/export-items", params={"job_id": job["id"], "limit": 2}).json()
    assert len(first["data"]) == 2 and first["pagination"]["hasNextPage"] is True
    rest = sb.api.get(
        "/v3/export-items",
        params={"job_id": job["id"], "limit": 10, "after": first["pagination"]["endCursor"]},
    ).json()
    ids = [i["accountingEntryId"] for i in first["data"] + rest["data"]]
    assert ids == [i["accountingEntryId"] for i in sb.state.get_job(job["id"])["items"]]
    assert rest["pagination"]["hasNextPage"] is False
