"""The sandbox's variant switches: where Pleo's documents disagree or are silent
(pleo_sandbox/variants.py, pleo_sandbox/ratelimit.py), each reading over real HTTP."""

import uuid

import pytest

from exports.services.webhooks import EXPORT_JOB_CREATED_EVENT_TYPES
from pleo_sandbox import variants
from pleo_sandbox.ratelimit import RateLimiter, key_for
from tests.openapi_schemas import enum_values, validate
from tests.sandbox.helpers import Api, Sandbox

SUBS = "webhook-subscriptions"


@pytest.fixture
def raw(pleo_sandbox):
    """Like ``sb`` but without the after-test spec check: these tests provoke answers the spec
    does not allow (an ``expired`` status) on purpose."""
    state = pleo_sandbox.state
    company = state.add_company("Acme ApS")
    key = state.add_api_key(company.id)
    api = Api(pleo_sandbox.url, key)
    yield Sandbox(pleo_sandbox, pleo_sandbox.url, state, company, key, api)
    api.close()


def entries_of(sb, job_id):
    return [i["accountingEntryId"] for i in sb.state.get_job(job_id)["items"]]


# --- expired_status -----------------------------------------------------------------------------


def test_expired_status_off_by_default_follows_the_v3_enum(raw):
    assert raw.state.switches["expired_status"] is False
    job_id = raw.state.create_job(raw.company.id, 2, expires_in=60)["id"]
    raw.state.advance_clock(61)
    job = raw.api.job(job_id)
    assert (job["status"], job["failureReasonType"]) == ("failed", "job_expired")
    assert raw.api.get("/v3/export-jobs", params={"statuses": "expired"}).status_code == 400


def test_expired_status_on_shows_expired(raw):
    raw.state.set_switches(expired_status=True)
    job_id = raw.state.create_job(raw.company.id, 2, expires_in=60)["id"]
    raw.api.event(job_id, "started")
    raw.state.advance_clock(61)
    job = raw.api.job(job_id)
    assert job["status"] == "expired"
    assert "expired" not in enum_values("ExportJobStatus")  # what the switch is about
    assert (job["failureReason"], job["failureReasonType"]) == (None, None)
    assert job["expiredAt"] is not None and job["completedAt"] is None
    items = raw.api.get(f"/v3/export-jobs/{job_id}/items").json()["data"]
    assert [i["status"] for i in items] == ["abandoned", "abandoned"]
    listed = raw.api.get("/v3/export-jobs", params={"statuses": "expired"}).json()["data"]
    assert [j["id"] for j in listed] == [job_id]
    unfinished = raw.api.get("/v3/export-jobs", params={"statuses": ["pending", "in_progress"]})
    assert unfinished.json()["data"] == []
    # Finished like any final status: no events, no item updates, no export items.
    assert raw.api.event(job_id, "completed").status_code == 422
    assert raw.api.get("/v3/export-items", params={"job_id": job_id}).status_code == 422
    assert raw.state.get_job(job_id)["events"][-2]["statusAfter"] == "expired"


# --- error_type_case ----------------------------------------------------------------------------


def error_types(sb) -> list[str]:
    job_id = sb.state.create_job(sb.company.id, 1)["id"]
    types = [
        sb.api.get(f"/v3/export-jobs/{uuid.uuid4()}").json()["type"],  # 404
        sb.api.event(job_id, "completed").json()["type"],  # 422
        sb.api.put(f"/v3/export-jobs/{job_id}/items", json=[]).json()["type"],  # 422 pending
        sb.client().get("/v3/export-jobs").json()["type"],  # 401
        sb.api.get("/v3/nothing").json()["type"],  # 404 unknown path
    ]
    sb.api.event(job_id, "started")
    update = [{"accountingEntryId": str(uuid.uuid4()), "status": "successful"}]
    answer = sb.api.put(f"/v3/export-jobs/{job_id}/items", json=update).json()
    types.append(answer["errors"][0]["type"])  # per-item error of a 200
    sb.state.set_switches(rate_limit_per_minute=1)
    sb.api.get("/v3/export-jobs")
    types.append(sb.api.get("/v3/export-jobs").json()["type"])  # 429
    return types


UPPER = [
    "EXPORT_NOT_FOUND",
    "INVALID_EXPORT_JOB_STATUS_CHANGE",
    "EXPORT_JOB_STATUS_UNPROCESSABLE",
    "UNAUTHORIZED",
    "NOT_FOUND",
    "ACCOUNTING_ENTRY_DOES_NOT_EXIST",
    "TOO_MANY_REQUESTS",
]


def test_error_types_are_upper_case_by_default(sb):
    assert sb.state.switches["error_type_case"] == "upper"
    assert error_types(sb) == UPPER


def test_error_type_case_lower(sb):
    sb.state.set_switches(error_type_case="lower")
    assert error_types(sb) == [t.lower() for t in UPPER]
    # A body a test gave a fault is sent as given.
    sb.state.set_switches(rate_limit_per_minute=0)
    sb.state.add_fault("status", "GET", "/v3/export-jobs", status=503, body={"type": "ODD_Case"})
    assert sb.api.get("/v3/export-jobs").json()["type"] == "ODD_Case"


# --- event_type_spelling ------------------------------------------------------------------------


def test_the_spellings_are_the_ones_the_product_accepts():
    assert set(variants.JOB_CREATED_SPELLINGS) == set(EXPORT_JOB_CREATED_EVENT_TYPES)
    assert variants.SWITCH_DEFAULTS["event_type_spelling"] == "v1.export-job.created"


@pytest.mark.parametrize("spelling", variants.JOB_CREATED_SPELLINGS)
def test_event_type_spelling(sb, receiver, spelling):
    sb.state.set_switches(event_type_spelling=spelling)
    hook = receiver()
    body = {"endpointUrl": hook.url, "eventTypes": ["v1.export-job.created"]}
    created = sb.api.post("/v1/subscriptions", json=body)
    assert created.status_code == 200, created.text
    sub = created.json()["data"]
    # Pleo shows its own spelling, whichever the subscription was created with.
    assert sub["eventTypes"] == [spelling]
    validate(sub, "SubscriptionModel", spec=SUBS, no_extra_fields=True)
    assert sb.api.get(f"/v1/subscriptions/{sub['id']}").json()["data"]["eventTypes"] == [spelling]
    for asked in variants.JOB_CREATED_SPELLINGS:
        found = sb.api.get("/v1/subscriptions", params={"event_types": asked}).json()["data"]
        assert [s["id"] for s in found] == [sub["id"]]
    # Created with another spelling: accepted, shown the same way.
    other = {"endpointUrl": "https://example.com/x", "eventTypes": ["export-job.created"]}
    assert sb.api.post("/v1/subscriptions", json=other).json()["data"]["eventTypes"] == [spelling]
    job = sb.state.create_job(sb.company.id, 1)
    [delivery] = hook.wait_for(1)
    assert delivery["json"]["eventType"] == spelling
    assert delivery["json"]["data"]["id"] == job["id"]
    [logged] = sb.state.wait_for_deliveries(1, subscriptionId=sub["id"], outcome="delivered")
    assert logged["eventType"] == spelling


def test_unknown_event_type_spelling_is_refused(sb):
    with pytest.raises(ValueError):
        sb.state.set_switches(event_type_spelling="export.job.created")
    body = {"endpointUrl": "https://x", "eventTypes": ["export.job.created"]}
    assert sb.api.post("/v1/subscriptions", json=body).status_code == 400


# --- rate_limit_per_minute / rate_limit_scope ---------------------------------------------------


class FakeTime:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def fake_time(pleo_sandbox):
    now = FakeTime()
    pleo_sandbox.state.rate_limiter = RateLimiter(now=now)
    return now


def statuses(api, n, path="/v3/export-jobs"):
    return [api.get(path).status_code for _ in range(n)]


def test_rate_limit_is_off_by_default(sb):
    assert sb.state.switches["rate_limit_per_minute"] == 0
    assert set(statuses(sb.api, 30)) == {200}


def test_rate_limit_per_credential_with_retry_after(sb, fake_time):
    sb.state.set_switches(rate_limit_per_minute=3)
    assert statuses(sb.api, 3) == [200, 200, 200]
    refused = sb.api.get("/v3/export-jobs")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "60"
    assert refused.json() == {"type": "TOO_MANY_REQUESTS", "message": "Rate limit exceeded."}
    # Every endpoint counts; refused requests do not.
    fake_time.now += 20
    assert statuses(sb.api, 1, "/v1/subscriptions") == [429]
    assert sb.api.get("/v3/export-jobs").headers["Retry-After"] == "40"
    # Another credential has its own window; a bad credential (401) counts for nobody.
    other = sb.client(sb.state.add_api_key(sb.company.id))
    assert statuses(other, 3) == [200, 200, 200]
    assert statuses(sb.client(), 5) == [401] * 5
    # A sliding window: the first request leaves it 60 s after it was made.
    fake_time.now += 40
    assert statuses(sb.api, 4) == [200, 200, 200, 429]
    other.close()


def test_rate_limit_window_is_a_switch(sb, fake_time):
    sb.state.set_switches(rate_limit_per_minute=2, rate_limit_window_seconds=1.5)
    assert statuses(sb.api, 3) == [200, 200, 429]
    assert sb.api.get("/v3/export-jobs").headers["Retry-After"] == "2"  # rounded up
    fake_time.now += 1.5
    assert statuses(sb.api, 3) == [200, 200, 429]


def test_rate_limit_global_scope(sb, fake_time):
    sb.state.set_switches(rate_limit_per_minute=2, rate_limit_scope="global")
    other = sb.client(sb.state.add_api_key(sb.company.id))
    assert statuses(sb.api, 1) + statuses(other, 2) == [200, 200, 429]
    other.close()


def test_rate_limit_oauth_scopes(pleo_sandbox, fake_time):
    state = pleo_sandbox.state
    company = state.add_company()
    client = state.add_oauth_client(redirect_uris=["https://x/cb"], company_id=company.id)
    first = state.oauth_issue_tokens(client.client_id)
    second = state.oauth_issue_tokens(client.client_id)  # another authorisation, same client

    def bearer(tokens):
        api = Api(pleo_sandbox.url)
        api.headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        return api

    state.set_switches(rate_limit_per_minute=2)  # scope: credential = one OAuth authorisation
    assert statuses(bearer(first), 2) + statuses(bearer(second), 2) == [200] * 4
    assert statuses(bearer(first), 1) == [429]
    fake_time.now += 61
    state.set_switches(rate_limit_scope="oauth_client")
    assert statuses(bearer(first), 1) + statuses(bearer(second), 2) == [200, 200, 429]


def test_rate_limit_keys():
    class Cred:
        def __init__(self, id, label=None):
            self.id, self.label = id, label

    rotated = [Cred("tok_a", "oauth:cli:grt_1"), Cred("tok_b", "oauth:cli:grt_1")]
    assert {key_for(c, "credential") for c in rotated} == {"grant:grt_1"}  # a refresh shares
    assert key_for(Cred("tok_c", "oauth:cli:grt_2"), "credential") == "grant:grt_2"
    assert key_for(Cred("tok_c", "oauth:cli:grt_2"), "oauth_client") == "oauth_client:cli"
    assert key_for(Cred("key_1", "seed-1"), "oauth_client") == "credential:key_1"
    assert key_for(Cred("key_1"), "global") == "global"


# --- put_refreshes_last_updated -----------------------------------------------------------------


@pytest.mark.parametrize("refreshes", [True, False])
def test_put_refreshes_last_updated(sb, refreshes):
    if not refreshes:
        sb.state.set_switches(put_refreshes_last_updated=False)
    assert sb.state.switches["put_refreshes_last_updated"] is refreshes
    job_id = sb.state.create_job(sb.company.id, 2, expires_in=100)["id"]
    entries = entries_of(sb, job_id)
    sb.api.event(job_id, "started")
    started = sb.api.job(job_id)["lastUpdatedAt"]
    sb.state.advance_clock(60)
    update = [{"accountingEntryId": entries[0], "status": "successful"}]
    assert sb.api.put(f"/v3/export-jobs/{job_id}/items", json=update).status_code == 200
    after = sb.api.job(job_id)["lastUpdatedAt"]
    assert (after != started) is refreshes
    sb.state.advance_clock(60)  # 120 s after start, 60 s after the update
    status = sb.api.job(job_id)["status"]
    assert status == ("in_progress" if refreshes else "failed")


# --- strict_final_event -------------------------------------------------------------------------


def test_final_events_are_not_checked_by_default(sb):
    assert sb.state.switches["strict_final_event"] is False
    job_id = sb.state.create_job(sb.company.id, 2)["id"]
    sb.api.event(job_id, "started")
    assert sb.api.event(job_id, "completed", failureReason="odd but ignored").status_code == 202
    assert sb.api.job(job_id)["status"] == "completed"


@pytest.mark.parametrize("event", ["completed", "completed_with_errors"])
def test_strict_final_event_refuses_unfinished_items(sb, event):
    sb.state.set_switches(strict_final_event=True)
    job_id = sb.state.create_job(sb.company.id, 2)["id"]
    entries = entries_of(sb, job_id)
    sb.api.event(job_id, "started")
    update = [{"accountingEntryId": entries[0], "status": "successful"}]
    sb.api.put(f"/v3/export-jobs/{job_id}/items", json=update)
    refused = sb.api.event(job_id, event)
    assert refused.status_code == 422
    assert refused.json() == {
        "type": "INVALID_EXPORT_JOB_STATUS_CHANGE",
        "message": variants.MSG_ITEMS_UNFINISHED,
    }
    last = sb.state.get_job(job_id)["events"][-1]
    assert (last["event"], last["accepted"]) == (event, False)
    assert sb.api.job(job_id)["status"] == "in_progress"
    final = "successful" if event == "completed" else "failed"
    update = [{"accountingEntryId": entries[1], "status": final}]
    sb.api.put(f"/v3/export-jobs/{job_id}/items", json=update)
    assert sb.api.event(job_id, event).status_code == 202
    assert sb.api.job(job_id)["status"] == event


def test_strict_final_event_refuses_failure_fields_except_on_failed(sb):
    sb.state.set_switches(strict_final_event=True)
    job_id = sb.state.create_job(sb.company.id, 1)["id"]
    refused = sb.api.event(job_id, "started", failureReasonType="validation_failure")
    assert refused.status_code == 400 and refused.json()["type"] == "BAD_REQUEST"
    assert sb.api.job(job_id)["status"] == "pending"
    assert sb.api.event(job_id, "started").status_code == 202
    # 'failed' with failure fields is fine even with unfinished items (they are abandoned).
    failed = sb.api.event(
        job_id, "failed", failureReason="ERP down", failureReasonType="service_unreachable"
    )
    assert failed.status_code == 202
    assert sb.api.job(job_id)["failureReasonType"] == "service_unreachable"


# --- switch values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, bad",
    [
        ("expired_status", "maybe"),
        ("error_type_case", "title"),
        ("event_type_spelling", "v3.export-job.created"),
        ("rate_limit_per_minute", -1),
        ("rate_limit_scope", "company"),
        ("rate_limit_window_seconds", 0),
        ("put_refreshes_last_updated", "sometimes"),
        ("strict_final_event", "very"),
        ("conflict_on_create", "perhaps"),
    ],
)
def test_bad_switch_values_are_refused(pleo_sandbox, name, bad):
    with pytest.raises(ValueError):
        pleo_sandbox.state.set_switches(**{name: bad})
