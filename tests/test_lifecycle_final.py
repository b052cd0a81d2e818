"""The export lifecycle's final event against the Pleo sandbox
(``exports.services.lifecycle_final``): a 422 after our event landed or because the job expired,
and an unknown outcome settled by re-reading the job.
"""

from __future__ import annotations

import pytest

from exports.models import ExportJob
from exports.pleo import PleoClient
from exports.services.start_flow import Outcome
from tests import lifecycle_support
from tests.lifecycle_support import EVENTS, audit

pytestmark = pytest.mark.django_db

env = lifecycle_support.env  # the sandbox company of the lifecycle tests (a fixture)


def test_final_event_422_after_our_event_landed_is_not_sent_again(env):
    job_id = env.job(2)
    env.state.add_fault(
        "status",
        "POST",
        EVENTS,
        status=422,
        apply=True,
        body_match={"event": "completed"},
        body={"type": "INVALID_EXPORT_JOB_STATUS_CHANGE", "message": "Export Job status change"},
    )
    assert env.run().outcome == Outcome.COMPLETED
    assert len(env.final_events(job_id)) == 1
    assert audit(env, "finish_refused").http_status == 422
    assert ExportJob.objects.get(pleo_job_id=job_id).status == "completed"


def test_final_event_422_because_the_job_expired_stops_without_retrying(env, monkeypatch):
    post = PleoClient.post_export_job_event

    def expire_first(self, job_id, event, **kw):
        if event != "started":
            env.state.advance_clock(4000)
        return post(self, job_id, event, **kw)

    monkeypatch.setattr(PleoClient, "post_export_job_event", expire_first)
    job_id = env.job(2)
    assert env.run().outcome == Outcome.JOB_EXPIRED
    assert [e["status"] for e in env.final_events(job_id)] == [422]
    assert "job_expired" in audit(env, "job_ended").message
    assert ExportJob.objects.get(pleo_job_id=job_id).failure_reason_type == "job_expired"


@pytest.mark.parametrize(("kind", "posts"), [("apply_then_drop", 1), ("status", 2)])
def test_final_event_with_unknown_outcome_is_settled_by_rereading(env, kind, posts):
    job_id = env.job(2)
    env.state.add_fault(kind, "POST", EVENTS, status=503, body_match={"event": "completed"})
    assert env.run().outcome == Outcome.COMPLETED
    assert len(env.final_events(job_id)) == posts
    assert env.pleo(job_id)["job"]["status"] == "completed"
    assert audit(env, "finish_unknown") is not None
