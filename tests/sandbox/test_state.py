"""``SandboxState``, the front: it keeps the whole control API and hands each call to one part."""

from __future__ import annotations

import inspect

import pytest

from pleo_sandbox.jobs import Jobs
from pleo_sandbox.state import SandboxState

# The public API before the split into store / jobs / items / subscriptions / oauth_store.
PUBLIC_API = """
add_api_key add_company add_fault add_oauth_client add_organisation add_token advance_clock
api_create_job api_create_subscription api_delete_subscription api_get_job api_get_subscription
api_list_export_items api_list_job_items api_list_jobs api_list_subscriptions api_post_event
api_subscription_activities api_subscription_secret api_update_items api_update_subscription
authenticate base_url clear_faults clear_requests clock companies count_request create_job
credentials error_body export_items faults file get_job identity_for list_jobs now oauth
oauth_authorize oauth_clients oauth_grants oauth_issue_tokens oauth_refresh_token_status
oauth_revoke_grant organisations other_integration_preempts parse_event_body rate_limiter
remove_fault request_log requests require_scope reset reset_switches revoke seed seed_companies
send_job_created_webhook set_clock_offset set_job_status set_switches
start_as_other_integration stop_event subscriptions switches update_company
wait_for_deliveries webhook_deliveries webhooks
""".split()


def test_the_front_keeps_the_public_api():
    state = SandboxState(seed=1)
    missing = [name for name in PUBLIC_API if not hasattr(state, name)]
    assert missing == []


def test_a_delegated_method_is_the_parts_own():
    state = SandboxState(seed=1)
    assert state.create_job.__func__ is Jobs.create_job
    assert SandboxState.create_job is Jobs.create_job
    assert inspect.signature(state.create_job) == inspect.signature(state._jobs.create_job)


def test_reset_forgets_every_part_and_the_seed_repeats_ids():
    state = SandboxState(seed=5)
    first = state.add_company().id
    key = state.add_api_key(first)
    cred = state.authenticate(key.auth_header()["Authorization"])
    state.api_create_subscription(
        cred, {"endpointUrl": "http://127.0.0.1:9/hook", "eventTypes": ["v1.export-job.created"]}
    )
    state.webhooks.stop()
    state.create_job(first, 1)
    state.add_oauth_client(redirect_uris="http://127.0.0.1/cb", company_id=first)
    state.set_switches(page_size_default=5)
    state.add_fault("status", "GET", "/v3/export-jobs")
    state.advance_clock(60)

    state.reset()

    assert state.companies() == state.credentials() == state.oauth_clients() == []
    assert state.list_jobs() == state.subscriptions() == []
    assert state.switches["page_size_default"] == 20
    assert state.faults.list() == []
    assert state.clock.offset_seconds == 0
    assert state.add_company().id == first


def test_the_logs_wait_for_a_state_and_time_out_without_it():
    state = SandboxState(seed=1)
    state.request_log.start({"method": "GET", "path": "/v3/export-jobs"})
    assert state.request_log.wait_for(lambda log: len(log) == 1, timeout=0.5)[0]["id"] == 1
    with pytest.raises(TimeoutError, match="request log did not reach the expected state"):
        state.request_log.wait_for(lambda log: len(log) == 2, timeout=0.05)
    assert state.webhooks.wait_for(lambda log: log == [], timeout=0.5) == []
    with pytest.raises(TimeoutError, match=r"webhook deliveries .*: \[\]"):
        state.webhooks.wait_for(lambda log: len(log) == 1, timeout=0.05)
    state.webhooks.stop()
