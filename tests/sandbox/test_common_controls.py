"""The control endpoints both sandboxes share (``pleo_sandbox.controls``), over HTTP: the fault
parameters ``POST /_sandbox/faults`` accepts in each, and the fault as the control API shows it."""

from __future__ import annotations

import pytest
import requests

from pleo_sandbox.server import SandboxServer
from xero_sandbox.server import XeroSandboxServer

EVERY_GENERIC_PARAMETER = {
    "kind": "status",
    "method": "get",
    "pathRegex": "/x.*",
    "count": 2,
    "bodyMatch": {"a": 1},
    "status": 502,
    "body": {"b": 1},
    "headers": {"X-Test": "y"},
    "retryAfter": 2,
    "seconds": 0.5,
    "apply": True,
}


@pytest.mark.parametrize(
    ("server_class", "job_faults"), [(SandboxServer, True), (XeroSandboxServer, False)]
)
def test_fault_parameters_each_sandbox_accepts(server_class, job_faults):
    with server_class() as server:

        def post(body: dict) -> requests.Response:
            return requests.post(f"{server.url}/_sandbox/faults", json=body, timeout=5)

        made = post(EVERY_GENERIC_PARAMETER)
        assert made.status_code == 201, made.text
        shown = made.json()["data"]
        assert shown["id"].startswith("flt_") and shown["hits"] == 0
        assert shown["method"] == "GET" and shown["path"] is None and shown["jobId"] is None
        assert {k: shown[k] for k in EVERY_GENERIC_PARAMETER if k != "method"} == {
            k: v for k, v in EVERY_GENERIC_PARAMETER.items() if k != "method"
        }
        # A Pleo job id is a Pleo sandbox parameter only.
        with_job = post({"kind": "status", "jobId": "job-1"})
        assert with_job.status_code == (201 if job_faults else 400), with_job.text
        assert post({"kind": "status", "colour": "red"}).status_code == 400
        assert post({"method": "GET"}).status_code == 400  # kind is required
