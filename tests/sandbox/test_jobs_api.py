"""Export jobs over real HTTP: shapes, scoping, create, errors; bodies checked against the spec."""

import uuid

import pytest

from pleo_sandbox.entities import MSG_ALREADY_IN_PROGRESS, MSG_MISSING_CONTRA
from pleo_sandbox.errors import ApiError
from tests.openapi_schemas import (
    PLEO_TIMESTAMP_RE,
    enum_values,
    schema,
    validate,
    validate_request_body,
    validate_response,
)

JSON_TYPE = "application/json;charset=UTF-8"
JOB_FIELDS = set(schema("ExportJobV3")["properties"])


def check_job(job: dict) -> None:
    validate(job, "ExportJobV3", no_extra_fields=True)
    assert set(job) == JOB_FIELDS, "every ExportJobV3 field, optional ones as null"
    assert job["status"] in enum_values("ExportJobStatus")
    if job["failureReasonType"] is not None:
        assert job["failureReasonType"] in enum_values("ExportJobFailureReasonType")
    for name in ("createdAt", "startedAt", "lastUpdatedAt", "completedAt", "expiredAt"):
        assert job[name] is None or PLEO_TIMESTAMP_RE.match(job[name]), (name, job[name])


def test_list_jobs_shape_and_fresh_job_fields(sb):
    created = sb.state.create_job(sb.company.id, 2)
    response = sb.api.get("/v3/export-jobs")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON_TYPE
    assert int(response.headers["Content-Length"]) == len(response.content)
    body = response.json()
    validate(body, "CursorPaginatedResponseExportJobV3", no_extra_fields=True)
    validate_response(body, "GET", "/v3/export-jobs", 200)
    [job] = body["data"]
    check_job(job)
    assert job == created
    assert job["status"] == "pending"
    assert job["numberOfItems"] == 2
    assert job["expiresIn"] == 3600
    assert job["companyId"] == sb.company.id
    assert job["lastUpdatedAt"] is None and job["startedAt"] is None
    assert job["isInteractive"] is True and job["vendorBasedBookkeeping"] is False


def test_get_job_and_not_found(sb):
    job = sb.state.create_job(sb.company.id, 1)
    response = sb.api.get(f"/v3/export-jobs/{job['id']}")
    assert response.status_code == 200
    validate_response(response.json(), "GET", "/v3/export-jobs/{jobId}", 200)
    check_job(response.json()["data"])

    missing = sb.api.get(f"/v3/export-jobs/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == JSON_TYPE
    assert missing.json() == {"type": "EXPORT_NOT_FOUND", "message": "Export job not found."}
    validate_response(missing.json(), "GET", "/v3/export-jobs/{jobId}", 404)

    bad = sb.api.get("/v3/export-jobs/not-a-uuid")
    assert bad.status_code == 400
    assert bad.json()["type"] == "BAD_REQUEST"


def test_a_key_sees_only_its_company(sb):
    other = sb.state.add_company("Other AB", currency="SEK")
    other_key = sb.state.add_api_key(other.id)
    mine = sb.state.create_job(sb.company.id, 1)
    theirs = sb.state.create_job(other.id, 1)

    ids = [j["id"] for j in sb.api.get("/v3/export-jobs").json()["data"]]
    assert ids == [mine["id"]]
    filtered = sb.api.get("/v3/export-jobs", params={"company_id": other.id}).json()
    assert filtered["data"] == []
    assert filtered["pagination"]["currentRequestPagination"]["parameters"] == {
        "company_id": [other.id]
    }
    assert sb.api.get(f"/v3/export-jobs/{theirs['id']}").status_code == 404
    assert sb.api.get(f"/v3/export-jobs/{theirs['id']}/items").status_code == 404
    other_api = sb.client(other_key)
    assert [j["id"] for j in other_api.get("/v3/export-jobs").json()["data"]] == [theirs["id"]]
    other_api.close()


def test_organisation_credential_sees_all_its_companies(sb):
    org = sb.state.add_organisation("Group", n_companies=2)
    a, b = org.company_ids
    outsider = sb.state.create_job(sb.company.id, 1)
    job_a = sb.state.create_job(a, 1)
    job_b = sb.state.create_job(b, 1)
    for cred in (
        sb.state.add_api_key(organisation_id=org.id),
        sb.state.add_token(company_ids=[a, b]),
    ):
        api = sb.client(cred)
        ids = {j["id"] for j in api.get("/v3/export-jobs").json()["data"]}
        assert ids == {job_a["id"], job_b["id"]}
        only_b = api.get("/v3/export-jobs", params={"company_id": b}).json()["data"]
        assert [j["id"] for j in only_b] == [job_b["id"]]
        assert api.get(f"/v3/export-jobs/{outsider['id']}").status_code == 404
        api.close()


def test_statuses_filter_repeated_and_validated(sb):
    pending = sb.state.create_job(sb.company.id, 1)
    running = sb.state.create_job(sb.company.id, 1)
    done = sb.state.create_job(sb.company.id, 1)
    assert sb.api.event(running["id"], "started").status_code == 202
    assert sb.api.event(done["id"], "started").status_code == 202
    assert sb.api.event(done["id"], "completed").status_code == 202

    def ids(query):
        response = sb.api.get("/v3/export-jobs?" + query)
        assert response.status_code == 200, response.text
        return {j["id"] for j in response.json()["data"]}

    assert ids("statuses=pending") == {pending["id"]}
    assert ids("statuses=pending&statuses=in_progress") == {pending["id"], running["id"]}
    assert ids("statuses=completed") == {done["id"]}
    assert ids("") == {pending["id"], running["id"], done["id"]}
    bad = sb.api.get("/v3/export-jobs?statuses=expired")
    assert bad.status_code == 400 and bad.json()["type"] == "BAD_REQUEST"


def create_body(company_id, n=2, **extra):
    return {
        "accountingEntryIds": [str(uuid.uuid4()) for _ in range(n)],
        "companyId": company_id,
        **extra,
    }


def test_create_job(sb):
    body = create_body(
        sb.company.id, 3, isInteractive=False, options={"vendorBasedBookkeeping": True}
    )
    validate_request_body(body, "POST", "/v3/export-jobs")
    response = sb.api.post("/v3/export-jobs", json=body)
    assert response.status_code == 201, response.text
    validate_response(response.json(), "POST", "/v3/export-jobs", 201)
    job = response.json()["data"]
    check_job(job)
    assert (job["numberOfItems"], job["isInteractive"], job["vendorBasedBookkeeping"]) == (
        3,
        False,
        True,
    )
    items = sb.api.get(f"/v3/export-jobs/{job['id']}/items").json()["data"]
    assert [i["accountingEntryId"] for i in items] == body["accountingEntryIds"]
    view = sb.state.get_job(job["id"])
    assert view["events"][0]["event"] == "created"
    assert view["events"][0]["identity"] == sb.key.identity


def test_create_job_409_while_the_company_has_an_unfinished_job(sb):
    """On by default (Pleo documents 409 EXPORT_ALREADY_IN_PROGRESS, reference §3.3)."""
    assert sb.state.switches["conflict_on_create"] is True
    first = sb.api.post("/v3/export-jobs", json=create_body(sb.company.id))
    assert first.status_code == 201
    conflict = sb.api.post("/v3/export-jobs", json=create_body(sb.company.id))
    assert conflict.status_code == 409
    assert conflict.json() == {
        "type": "EXPORT_ALREADY_IN_PROGRESS",
        "message": MSG_ALREADY_IN_PROGRESS,
    }
    validate_response(conflict.json(), "POST", "/v3/export-jobs", 409)
    # An in-progress job blocks too; another company is not affected.
    job_id = first.json()["data"]["id"]
    sb.api.event(job_id, "started")
    assert sb.api.post("/v3/export-jobs", json=create_body(sb.company.id)).status_code == 409
    other = sb.state.add_company("Other")
    other_api = sb.client(sb.state.add_api_key(other.id))
    assert other_api.post("/v3/export-jobs", json=create_body(other.id)).status_code == 201
    # The control API bypasses the rule (tests that need several unfinished jobs), unless asked.
    assert sb.state.create_job(sb.company.id, 1)["status"] == "pending"
    with pytest.raises(ApiError) as refused:
        sb.state.create_job(sb.company.id, 1, conflict_check=True)
    assert refused.value.status == 409
    # Once every job of the company is finished, creating works again.
    for job in sb.state.list_jobs(sb.company.id):
        sb.api.event(job["id"], "started")
        sb.api.event(job["id"], "failed", failureReasonType="canceled_by_user")
    assert sb.api.post("/v3/export-jobs", json=create_body(sb.company.id)).status_code == 201
    other_api.close()


def test_create_job_conflict_switch_off(sb):
    sb.state.set_switches(conflict_on_create=False)
    for _ in range(2):
        assert sb.api.post("/v3/export-jobs", json=create_body(sb.company.id)).status_code == 201
    assert sb.state.create_job(sb.company.id, 1, conflict_check=True)["status"] == "pending"
    assert len(sb.state.list_jobs(sb.company.id)) == 3


def test_create_job_missing_contra_accounts(sb):
    sb.state.update_company(sb.company.id, contra_accounts_configured=False)
    response = sb.api.post("/v3/export-jobs", json=create_body(sb.company.id))
    assert response.status_code == 400
    assert response.json() == {"type": "MISSING_CONTRA_ACCOUNTS", "message": MSG_MISSING_CONTRA}


@pytest.mark.parametrize(
    "body",
    [
        {"companyId": "x", "accountingEntryIds": []},
        {"accountingEntryIds": [str(uuid.uuid4())]},
        {"companyId": None, "accountingEntryIds": ["nope"]},
        ["not", "an", "object"],
    ],
)
def test_create_job_invalid_body(sb, body):
    response = sb.api.post("/v3/export-jobs", json=body)
    assert response.status_code == 400
    assert response.json()["type"] == "BAD_REQUEST"
    assert response.json()["message"]


def test_create_job_for_a_company_the_key_cannot_see(sb):
    other = sb.state.add_company("Other")
    response = sb.api.post("/v3/export-jobs", json=create_body(other.id))
    assert response.status_code == 403
    assert response.json()["type"] == "FORBIDDEN"
    assert sb.state.list_jobs(other.id) == []


def test_create_job_duplicate_entry_ids(sb):
    entry = str(uuid.uuid4())
    response = sb.api.post(
        "/v3/export-jobs", json={"companyId": sb.company.id, "accountingEntryIds": [entry, entry]}
    )
    assert response.status_code == 400
