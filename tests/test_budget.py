"""The shared request budget (``exports.services.budget``): the GCRA bound, its database and Redis
stores, several real processes spending one budget, and what a run does when it is spent
(deferred, lease released, picked up by the sweep; ``check_exports`` waits, bounded)."""

from __future__ import annotations

import io
import random
import sys
import time
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse

from exports import clock
from exports.models import AuditEntry, Company, Credential, RequestBudget, Trigger
from exports.pleo import BudgetExhausted
from exports.services import budget
from exports.services.start_flow import Outcome, company_check_run
from exports.services.sweep import leases_sweep_stale
from tests import processes
from tests.factories import make_credential, make_sandbox_company

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_budget")]


def max_in_any_window(times: list[float], window: float) -> int:
    """The most events in any closed interval of length ``window``."""
    times = sorted(times)
    best = start = 0
    for end, moment in enumerate(times):
        while moment - times[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


# --- The rule ------------------------------------------------------------------------------------


def test_rate_parameters():
    rate = budget.Rate(limit=500)
    assert (rate.burst, round(rate.interval, 6), round(rate.tolerance, 6)) == (250, 0.24, 59.76)
    assert budget.Rate(limit=500, burst=50).interval == pytest.approx(60 / 450)
    assert budget.Rate(limit=2).burst == 1
    with pytest.raises(ValueError):
        budget.Rate(limit=1)


@pytest.mark.parametrize(
    "burst",
    [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(7, marks=pytest.mark.slow), 19],
)
def test_gcra_never_grants_more_than_the_limit_in_any_window(burst):
    """Random arrival times, many more than the limit: any 1 s window holds at most 20 grants,
    and the budget is not wasted (the steady rate is reached)."""
    now = [1000.0]
    store = budget.DatabaseBudget(now=lambda: now[0])
    rate = budget.Rate(limit=20, window=1.0, burst=burst)
    rng = random.Random(burst)
    granted = []
    while now[0] < 1010:
        decision = store.consume("k", rate)
        if decision.granted:
            granted.append(decision.at)
        else:
            assert decision.retry_at > decision.at
        now[0] += rng.choice([0.0, 0.0, 0.001, 0.005, 0.02])
    assert max_in_any_window(granted, 1.0) <= 20
    assert len(granted) >= (rate.limit - rate.burst) * 10 * 0.7


def test_database_budget_grants_refuses_and_reports():
    now = [5000.0]
    store = budget.DatabaseBudget(now=lambda: now[0])
    rate = budget.Rate(limit=4, window=60.0)  # burst 2, then one every 30 s
    assert [store.consume("credential:1", rate).granted for _ in range(3)] == [True, True, False]
    refused = store.consume("credential:1", rate)
    assert refused.retry_at == pytest.approx(5030.0)
    now[0] = 5030.0
    assert store.consume("credential:1", rate).granted
    row = RequestBudget.objects.get(key="credential:1")
    assert (row.used, row.refused) == (3, 2)
    usage = store.usage(["credential:1", "credential:2"], rate)
    assert list(usage) == ["credential:1"]


@pytest.mark.redis
def test_redis_budget_grants_refuses_and_reports(redis_url, settings):
    store = budget.RedisBudget(redis_url, prefix=f"test-budget-{uuid.uuid4().hex}:")
    rate = budget.Rate(limit=4, window=60.0)
    decisions = [store.consume("credential:1", rate) for _ in range(3)]
    assert [d.granted for d in decisions] == [True, True, False]
    assert decisions[2].retry_at == pytest.approx(decisions[0].at + 30, abs=1)
    usage = store.usage(["credential:1", "never"], rate)
    assert list(usage) == ["credential:1"]
    assert usage["credential:1"].used_this_minute == 2
    assert usage["credential:1"].refused_this_minute == 1
    assert usage["credential:1"].spent_until is not None


def test_keys_follow_the_scope(settings):
    api = make_credential(name="Key")
    oauth = Credential.objects.create(name="O", kind=Credential.Kind.OAUTH, oauth_client_id="c-1")
    settings.PLEO_RATE_LIMIT_SCOPE = "credential"
    labels = [
        budget.budget_key_label(key=budget.budget_key_for(credential=c)) for c in (api, oauth)
    ]
    assert labels == [f"credential:{api.pk}", f"credential:{oauth.pk}"]
    assert budget.budget_key_for(credential=api) != budget.budget_key_for(credential=oauth)
    settings.PLEO_RATE_LIMIT_SCOPE = "oauth_client"
    assert (
        budget.budget_key_label(key=budget.budget_key_for(credential=api)) == f"credential:{api.pk}"
    )
    assert budget.budget_key_for(credential=oauth) == "oauth_client:c-1"
    settings.PLEO_RATE_LIMIT_SCOPE = "global"
    assert (
        budget.budget_key_for(credential=api) == budget.budget_key_for(credential=oauth) == "global"
    )


def test_switched_off_means_no_hook(settings):
    settings.PLEO_RATE_LIMIT_PER_MINUTE = 0
    assert budget.budget_hook_for(credential=make_credential()) is None
    assert budget.budget_usage_describe(usage=None).startswith("Switched off")


def test_a_client_built_from_a_credential_spends_its_budget(settings):
    from exports.services.credentials import pleo_client_for_credential

    settings.PLEO_RATE_LIMIT_PER_MINUTE = 4
    credential = make_credential()
    client = pleo_client_for_credential(credential=credential, run_id=None)
    client._before_request("GET", "/v3/export-jobs")
    client._before_request("GET", "/v3/export-jobs")
    with pytest.raises(BudgetExhausted) as caught:
        client._before_request("GET", "/v3/export-jobs")
    assert caught.value.key == budget.budget_key_for(credential=credential)
    assert caught.value.key.startswith(f"credential:{credential.pk}:")
    assert caught.value.retry_at > clock.now()


# --- Several processes, one budget ---------------------------------------------------------------

CONSUMER = """
import sys, time
import django
django.setup()
from exports.pleo import BudgetExhausted
from exports.services import budget
key, start_at, until = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
while time.time() < start_at:
    time.sleep(0.005)
granted = []
while time.time() < until:
    try:
        granted.append(budget.budget_consume(key=key).at)
    except BudgetExhausted:
        time.sleep(0.002)
print("GRANTED", " ".join(repr(t) for t in granted), flush=True)
"""

LIMIT, WINDOW, SPENDERS, SECONDS = 20, 1.0, 4, 3.0


def _spend_from_processes(env: dict, tmp_path, key: str) -> list[float]:
    env = {
        **env,
        "PLEO_RATE_LIMIT_PER_MINUTE": str(LIMIT),
        "PLEO_RATE_LIMIT_WINDOW_SECONDS": str(WINDOW),
    }
    start_at = time.time() + 4.0  # every process is up before any spends
    until = start_at + SECONDS
    spender = [sys.executable, "-c", CONSUMER, key, repr(start_at), repr(until)]
    results = processes.run_together([spender] * SPENDERS, env, tmp_path, marker="GRANTED")
    granted = []
    for words in results:
        assert words, "every process got some of the budget"
        granted += [float(t) for t in words]
    return granted


def _assert_held(granted: list[float]) -> None:
    rate = budget.Rate(limit=LIMIT, window=WINDOW)
    assert max_in_any_window(granted, WINDOW) <= LIMIT
    # Not starved either: the burst plus the steady rate, give or take start-up jitter.
    expected = rate.burst + (LIMIT - rate.burst) * SECONDS / WINDOW
    assert len(granted) >= 0.7 * expected, (len(granted), expected)


@pytest.mark.slow  # a multi-process proof (about 7 s): .ci/run runs it
@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_processes_sharing_the_database_budget_never_exceed_it(product_env, tmp_path):
    env = {k: v for k, v in product_env.items() if k != "REDIS_URL"}
    env["PLEO_RATE_LIMIT_BACKEND"] = "database"
    _assert_held(_spend_from_processes(env, tmp_path, "global"))
    # The database held it. Not ``used > 0`` alone: a refusal in a new epoch minute starts that
    # minute's counts at used 0, refused 1, and the spenders' last tries are refusals.
    row = RequestBudget.objects.get(key="global")
    assert row.tat > 0 and row.used + row.refused > 0


@pytest.mark.slow  # a multi-process proof (about 7 s): .ci/run runs it
@pytest.mark.subprocess
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_processes_sharing_the_redis_budget_never_exceed_it(product_env, tmp_path, redis_url):
    env = {**product_env, "REDIS_URL": redis_url, "PLEO_RATE_LIMIT_BACKEND": "redis"}
    _assert_held(_spend_from_processes(env, tmp_path, f"test-{uuid.uuid4().hex}"))
    assert not RequestBudget.objects.exists()  # nothing went to the database


# --- A spent budget in a run ---------------------------------------------------------------------


@pytest.fixture
def sandbox_company(pleo_sandbox, settings):
    settings.PLEO_MAX_ATTEMPTS = 2
    settings.PLEO_BACKOFF_BASE = 0
    settings.PLEO_BACKOFF_MAX = 0
    settings.PLEO_RATE_LIMIT_BACKEND = "database"  # the stores are tested above; this is the flow
    remote, company = make_sandbox_company(pleo_sandbox, name="Budget Acme")
    return pleo_sandbox.state, remote, company


def _spend_everything(company: Company, settings, limit=4) -> None:
    settings.PLEO_RATE_LIMIT_PER_MINUTE = limit
    key = budget.budget_key_for(credential=company.credential)
    with pytest.raises(BudgetExhausted):
        for _ in range(limit + 1):
            budget.budget_consume(key=key)


def test_a_run_that_finds_the_budget_spent_defers_and_the_sweep_picks_it_up_then(
    sandbox_company, settings, monkeypatch
):
    state, remote, company = sandbox_company
    job = state.create_job(remote.id, items=1, notify=False)
    _spend_everything(company, settings)

    result = company_check_run(company=company, trigger=Trigger.SCHEDULE)
    assert result.outcome == Outcome.DEFERRED
    assert result.not_before is not None and result.not_before > clock.now()
    assert state.requests() == []  # nothing reached Pleo
    company.refresh_from_db()
    assert company.lease_token is None  # released, not slept on
    assert (company.last_check_outcome, company.work_pending) == ("deferred", True)
    assert abs((company.next_run_not_before - result.not_before).total_seconds()) < 1
    assert not AuditEntry.objects.filter(company=company).exists()  # nothing happened

    queued = []
    monkeypatch.setattr(
        "exports.services.sweep.company_check_enqueue",
        lambda **kw: queued.append(kw["company_id"]) or True,
    )
    assert leases_sweep_stale() == 0  # not before its time
    clock.advance((company.next_run_not_before - clock.now()).total_seconds() + 1)
    RequestBudget.objects.all().delete()  # room again (the budget runs on real time)
    settings.PLEO_RATE_LIMIT_PER_MINUTE = 500
    assert leases_sweep_stale() == 1 and queued == [company.pk]

    again = company_check_run(company=company, trigger=Trigger.RECOVERY, recover=True)
    assert again.outcome == Outcome.COMPLETED, again.error
    assert state.get_job(job["id"])["job"]["status"] == "completed"
    company.refresh_from_db()
    assert (company.work_pending, company.next_run_not_before) == (False, None)


def test_a_budget_spent_in_the_middle_of_a_job_pauses_it_and_the_next_run_finishes_it(
    sandbox_company, settings, monkeypatch
):
    state, remote, company = sandbox_company
    job = state.create_job(remote.id, items=3, notify=False)
    real = budget.budget_consume
    calls = []

    def consume(*, key):
        calls.append(key)
        if len(calls) > 4:  # list, get, started, items: then spent
            raise BudgetExhausted(
                "budget spent (test)", retry_at=clock.now() + timedelta(seconds=30), key=key
            )
        return real(key=key)

    monkeypatch.setattr(budget, "budget_consume", consume)
    result = company_check_run(company=company, trigger=Trigger.SCHEDULE)
    assert result.outcome == Outcome.DEFERRED
    assert str(result.job_id) == job["id"]
    company.refresh_from_db()
    assert company.work_pending and company.lease_token is None
    assert company.next_run_not_before > clock.now() + timedelta(seconds=25)
    steps = list(
        AuditEntry.objects.filter(company=company).order_by("id").values_list("step", flat=True)
    )
    assert "started" in steps and steps[-1] == "deferred"
    assert state.get_job(job["id"])["job"]["status"] == "in_progress"

    monkeypatch.setattr(budget, "budget_consume", real)
    again = company_check_run(company=company, trigger=Trigger.RECOVERY, recover=True)
    assert again.outcome == Outcome.COMPLETED
    assert state.get_job(job["id"])["job"]["status"] == "completed"


def test_check_exports_waits_for_the_budget_then_runs(sandbox_company, settings, monkeypatch):
    state, remote, company = sandbox_company
    state.create_job(remote.id, items=1, notify=False)
    real = budget.budget_consume
    refusals = []

    def consume(*, key):
        if not refusals:
            refusals.append(key)
            raise BudgetExhausted("spent", retry_at=clock.now() + timedelta(seconds=0.3), key=key)
        return real(key=key)

    monkeypatch.setattr(budget, "budget_consume", consume)
    out = io.StringIO()
    call_command("check_exports", "--wait", "5", stdout=out)
    assert refusals
    assert out.getvalue().startswith(f"{company.name}: completed job ")


def test_check_exports_reports_deferred_when_it_may_not_wait(sandbox_company, settings, capsys):
    state, remote, company = sandbox_company
    state.create_job(remote.id, items=1, notify=False)
    _spend_everything(company, settings)
    call_command("check_exports", "--wait", "0", "--json")
    out = capsys.readouterr().out
    assert '"outcome": "deferred"' in out and "budget" in out
    assert state.requests() == []


# --- The admin shows it ------------------------------------------------------------------------


def test_credential_page_shows_the_budget_in_use(admin_client, settings):
    credential = make_credential()
    settings.PLEO_RATE_LIMIT_PER_MINUTE = 10
    for _ in range(3):
        budget.budget_consume(key=budget.budget_key_for(credential=credential))
    html = admin_client.get(
        reverse("admin:exports_credential_change", args=[credential.pk])
    ).content.decode()
    assert "Request budget" in html
    assert "3 of 10 requests this minute" in html
