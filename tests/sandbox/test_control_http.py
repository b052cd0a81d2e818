"""The /_sandbox/ control API over HTTP (what subprocess tests and the standalone command use)."""

import base64

import requests

TIMEOUT = 5


class Control:
    def __init__(self, url):
        self.url = url + "/_sandbox"

    def call(self, method, path, expected=200, **kw):
        response = requests.request(method, self.url + path, timeout=TIMEOUT, **kw)
        assert response.status_code == expected, (method, path, response.text)
        return response.json() if response.content else None


def test_full_control_round_trip(pleo_sandbox):
    url = pleo_sandbox.url
    ctl = Control(url)
    company = ctl.call("POST", "/companies", 201, json={"name": "Fjord AS", "currency": "NOK"})[
        "data"
    ]
    assert company["currency"] == "NOK"
    key = ctl.call("POST", "/api-keys", 201, json={"companyId": company["id"]})["data"]
    token = ctl.call("POST", "/tokens", 201, json={"companyIds": [company["id"]], "expiresIn": 30})[
        "data"
    ]
    assert key["authorization"].startswith("Basic ") and token["authorization"].startswith(
        "Bearer "
    )
    job = ctl.call(
        "POST",
        "/jobs",
        201,
        json={"companyId": company["id"], "items": {"normal": 1, "refund": 1}, "expiresIn": 120},
    )["data"]
    assert job["numberOfItems"] == 2 and job["expiresIn"] == 120

    api_headers = {"Authorization": key["authorization"]}
    listed = requests.get(f"{url}/v3/export-jobs", headers=api_headers, timeout=TIMEOUT).json()
    assert [j["id"] for j in listed["data"]] == [job["id"]]

    # Switches and faults.
    switches = ctl.call("PATCH", "/switches", json={"startedOnInProgress": "202"})["data"]
    assert switches["started_on_in_progress"] == "202"
    assert ctl.call("GET", "/switches")["data"]["started_on_in_progress"] == "202"
    ctl.call("PATCH", "/switches", 400, json={"listOrder": "sideways"})
    fault = ctl.call(
        "POST",
        "/faults",
        201,
        json={
            "kind": "rate_limit",
            "method": "GET",
            "path": "/v3/export-jobs/{jobId}",
            "retryAfter": 3,
            "count": 1,
        },
    )["data"]
    assert ctl.call("GET", "/faults")["data"][0]["id"] == fault["id"]
    limited = requests.get(
        f"{url}/v3/export-jobs/{job['id']}", headers=api_headers, timeout=TIMEOUT
    )
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    ctl.call("POST", "/faults", 201, json={"kind": "status", "path": "/v3/export-items"})
    requests.delete(f"{ctl.url}/faults", timeout=TIMEOUT)
    assert ctl.call("GET", "/faults")["data"] == []

    # Other integration, job view, export items, clock.
    assert ctl.call("POST", f"/jobs/{job['id']}/start-as-other-integration")["started"] is True
    view = ctl.call("GET", f"/jobs/{job['id']}")["data"]
    assert view["job"]["status"] == "in_progress"
    assert [e["identity"] for e in view["events"]] == ["sandbox-control", "other-integration"]
    assert sorted(i["kind"] for i in view["items"]) == ["normal", "refund"]
    assert len(ctl.call("GET", f"/jobs/{job['id']}/export-items")["data"]) == 2
    clock = ctl.call("POST", "/clock/advance", json={"seconds": 121})
    assert clock["offsetSeconds"] == 121
    assert (
        ctl.call("GET", f"/jobs/{job['id']}")["data"]["job"]["failureReasonType"] == "job_expired"
    )
    expired = requests.get(
        f"{url}/v3/export-jobs", headers={"Authorization": token["authorization"]}, timeout=TIMEOUT
    )
    assert expired.status_code == 401
    assert ctl.call("PUT", "/clock", json={"offsetSeconds": 0})["offsetSeconds"] == 0

    # Logs.
    log = ctl.call("GET", "/requests", params={"path": "/v3/export-jobs"})["data"]
    assert [e["status"] for e in log] == [200, 401]
    assert ctl.call("GET", "/webhook-deliveries")["data"] == []
    revoked = ctl.call("POST", f"/credentials/{key['id']}/revoke")["data"]
    assert revoked["revoked"] is True
    assert (
        requests.get(f"{url}/v3/export-jobs", headers=api_headers, timeout=TIMEOUT).status_code
        == 401
    )

    # Reset forgets everything.
    ctl.call("POST", "/reset", json={})
    assert ctl.call("GET", "/companies")["data"] == []
    assert ctl.call("GET", "/requests")["data"] == []
    assert ctl.call("GET", "/switches")["data"]["started_on_in_progress"] == "422"


def test_control_seed_and_organisations(pleo_sandbox):
    ctl = Control(pleo_sandbox.url)
    seeded = ctl.call("POST", "/seed", 201, json={"companies": 2, "jobsPerCompany": 3})["data"]
    assert len(seeded) == 2 and all(len(s["jobIds"]) == 3 for s in seeded)
    token = base64.b64encode((seeded[0]["apiKey"] + ":").encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    jobs = requests.get(f"{pleo_sandbox.url}/v3/export-jobs", headers=headers, timeout=TIMEOUT)
    assert {j["id"] for j in jobs.json()["data"]} == set(seeded[0]["jobIds"])
    org = ctl.call(
        "POST",
        "/organisations",
        201,
        json={"companyIds": [s["company"]["id"] for s in seeded]},
    )["data"]
    assert len(org["companyIds"]) == 2
    assert ctl.call("GET", "/organisations")["data"][0]["id"] == org["id"]


def test_control_errors_are_json(pleo_sandbox):
    ctl = Control(pleo_sandbox.url)
    assert ctl.call("GET", "/nothing", 404)["type"] == "SANDBOX_NOT_FOUND"
    assert ctl.call("DELETE", "/companies", 405)["type"] == "METHOD_NOT_ALLOWED"
    assert ctl.call("POST", "/jobs", 400, json={})["type"] == "SANDBOX_BAD_REQUEST"
    assert (
        ctl.call("POST", "/jobs", 400, json={"companyId": "nope"})["type"] == "SANDBOX_BAD_REQUEST"
    )
    assert ctl.call("GET", "/jobs/00000000-0000-0000-0000-000000000000", 404)
    assert ctl.call("POST", "/companies", 400, data="{nope")["type"] == "SANDBOX_BAD_REQUEST"
    assert (
        ctl.call("POST", "/companies", 400, json={"colour": "red"})["type"] == "SANDBOX_BAD_REQUEST"
    )
    assert (
        ctl.call("POST", "/faults", 400, json={"kind": "meteor"})["type"] == "SANDBOX_BAD_REQUEST"
    )
    assert ctl.call("POST", "/clock/advance", 400, json={})["type"] == "SANDBOX_BAD_REQUEST"
    assert ctl.call("GET", "/health")["ok"] is True


def test_issue_16_switches_over_http(pleo_sandbox):
    """Every variant switch is settable over HTTP (camelCase or snake_case) and reset."""
    ctl = Control(pleo_sandbox.url)
    defaults = ctl.call("GET", "/switches")["data"]
    assert {k: defaults[k] for k in NEW_SWITCHES} == {
        "expired_status": False,
        "error_type_case": "upper",
        "event_type_spelling": "v1.export-job.created",
        "conflict_on_create": True,
        "rate_limit_per_minute": 0,
        "rate_limit_scope": "credential",
        "rate_limit_window_seconds": 60.0,
        "put_refreshes_last_updated": True,
        "strict_final_event": False,
    }
    changed = ctl.call(
        "PATCH",
        "/switches",
        json={
            "expiredStatus": True,
            "errorTypeCase": "lower",
            "eventTypeSpelling": "export-job.created",
            "conflictOnCreate": "false",
            "rateLimitPerMinute": 600,
            "rate_limit_scope": "global",
            "rateLimitWindowSeconds": 2,
            "putRefreshesLastUpdated": False,
            "strictFinalEvent": "true",
        },
    )["data"]
    assert {k: changed[k] for k in NEW_SWITCHES} == {
        "expired_status": True,
        "error_type_case": "lower",
        "event_type_spelling": "export-job.created",
        "conflict_on_create": False,
        "rate_limit_per_minute": 600,
        "rate_limit_scope": "global",
        "rate_limit_window_seconds": 2.0,
        "put_refreshes_last_updated": False,
        "strict_final_event": True,
    }
    ctl.call("PATCH", "/switches", 400, json={"errorTypeCase": "title"})
    ctl.call("PATCH", "/switches", 400, json={"rateLimitScope": "company"})
    assert ctl.call("DELETE", "/switches")["data"] == defaults


def test_control_job_creation_bypasses_the_conflict_unless_asked(pleo_sandbox):
    ctl = Control(pleo_sandbox.url)
    company = ctl.call("POST", "/companies", 201, json={})["data"]
    for _ in range(2):
        ctl.call("POST", "/jobs", 201, json={"companyId": company["id"]})
    refused = ctl.call(
        "POST", "/jobs", 409, json={"companyId": company["id"], "conflictCheck": True}
    )
    assert refused["type"] == "EXPORT_ALREADY_IN_PROGRESS"
    assert len(ctl.call("GET", "/jobs", params={"company_id": company["id"]})["data"]) == 2


NEW_SWITCHES = (
    "expired_status",
    "error_type_case",
    "event_type_spelling",
    "conflict_on_create",
    "rate_limit_per_minute",
    "rate_limit_scope",
    "rate_limit_window_seconds",
    "put_refreshes_last_updated",
    "strict_final_event",
)
