"""One bad company never stops the others.

Bad input is refused where it enters (``add_company``, the admin form), and whatever one company
raises during a check is recorded as that company's ``failed`` outcome while every other company
of ``check_exports`` or of the worker's batch task still runs.
"""

from __future__ import annotations

import json
import uuid

import pytest
import responses
from django.core.management import call_command
from django.core.management.base import CommandError

from exports.models import AuditEntry, Company, Credential, Trigger
from exports.services import start_flow
from exports.tasks import run_company_check, run_company_checks
from tests import secrets_registry
from tests.factories import make_company, make_credential

pytestmark = pytest.mark.django_db

BASE = "https://pleo.test"
LIST = f"{BASE}/v3/export-jobs"
EMPTY_PAGE = {"data": [], "pagination": {"hasNextPage": False, "hasPreviousPage": False}}


@pytest.fixture
def fake():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(LIST, json=EMPTY_PAGE)
        yield mock


@pytest.fixture
def three():
    """Companies A, B, C (the order the command and a batch run them in); B is the bad one."""
    made = {}
    for name in ("A", "B", "C"):
        key = secrets_registry.register(f"pk_test_guard_{name}_{uuid.uuid4().hex[:8]}")
        made[name] = make_company(
            name=name, credential=make_credential(name=name, api_key=key, api_base_url=BASE)
        )
    return made


@pytest.fixture
def b_explodes(three, monkeypatch):
    """An unexpected exception in B's run, whose message even carries B's API key."""
    original = start_flow.pleo_client_for_company
    b_key = three["B"].credential.api_key

    def pleo_client_for_company(*, company, run_id):
        if company.pk == three["B"].pk:
            raise RuntimeError(f"boom: unexpected state near {b_key}")
        return original(company=company, run_id=run_id)

    monkeypatch.setattr(start_flow, "pleo_client_for_company", pleo_client_for_company)
    return three


def _assert_b_failed_and_others_checked(three, *, why):
    for name, company in three.items():
        company.refresh_from_db()
        assert company.last_check_at is not None, name
        expected = "failed" if name == "B" else "nothing_pending"
        assert company.last_check_outcome == expected, (name, company.last_check_error)
    b = three["B"]
    assert why in b.last_check_error
    assert b.credential.api_key not in b.last_check_error
    errors = AuditEntry.objects.filter(company=b, outcome=AuditEntry.Outcome.ERROR)
    assert errors.count() == 1 and why in errors.get().message
    assert b.credential.api_key not in errors.get().message
    assert not AuditEntry.objects.filter(company__in=[three["A"], three["C"]]).exists()


# --- check_exports ----------------------------------------------------------------------------


def test_check_exports_goes_on_after_an_unexpected_exception(b_explodes, fake, capsys):
    with pytest.raises(CommandError) as failed:
        call_command("check_exports")
    assert failed.value.returncode == 1
    assert "1 of 3 companies failed" in str(failed.value)
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["A", "B", "C"]
    assert lines[0] == "A: nothing_pending" and lines[2] == "C: nothing_pending"
    assert lines[1].startswith("B: failed: Unexpected error: RuntimeError: boom")
    assert "[secret]" in lines[1]
    assert b_explodes["B"].credential.api_key not in "\n".join(lines)
    _assert_b_failed_and_others_checked(b_explodes, why="RuntimeError: boom")


def test_check_exports_json_reports_the_failed_company_too(b_explodes, fake, capsys):
    with pytest.raises(CommandError):
        call_command("check_exports", "--json")
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [(r["company"], r["outcome"]) for r in rows] == [
        ("A", "nothing_pending"),
        ("B", "failed"),
        ("C", "nothing_pending"),
    ]
    assert rows[1]["error"].startswith("Unexpected error: RuntimeError")


def test_a_stored_ftp_base_url_fails_its_company_only(three, fake, capsys):
    """The reported case: a URL stored before validation existed (or by a shell)."""
    Credential.objects.filter(pk=three["B"].credential_id).update(api_base_url="ftp://x")
    with pytest.raises(CommandError) as failed:
        call_command("check_exports")
    assert failed.value.returncode == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "A: nothing_pending" and lines[2] == "C: nothing_pending"
    assert lines[1].startswith("B: failed:") and "must start with https://" in lines[1]
    _assert_b_failed_and_others_checked(three, why="must start with https://")


def test_interrupts_still_stop_the_command(three, fake, monkeypatch):
    def interrupted(company, *, run_id):
        raise KeyboardInterrupt

    monkeypatch.setattr(start_flow, "pleo_client_for_company", interrupted)
    with pytest.raises(KeyboardInterrupt):
        call_command("check_exports")


# --- The worker's tasks ------------------------------------------------------------------------


def test_batch_task_goes_on_after_an_unexpected_exception(b_explodes, fake):
    ids = [b_explodes[name].pk for name in ("A", "B", "C")]
    summary = run_company_checks(ids, Trigger.SCHEDULE)
    assert summary == "failed: 1, nothing_pending: 2"
    _assert_b_failed_and_others_checked(b_explodes, why="RuntimeError: boom")


def test_batch_task_with_a_stored_ftp_base_url(three, fake):
    Credential.objects.filter(pk=three["B"].credential_id).update(api_base_url="ftp://x")
    summary = run_company_checks([c.pk for c in three.values()], Trigger.SCHEDULE)
    assert summary == "failed: 1, nothing_pending: 2"
    _assert_b_failed_and_others_checked(three, why="must start with https://")


def test_single_task_records_the_failure_instead_of_crashing(b_explodes, fake):
    assert run_company_check(b_explodes["B"].pk, Trigger.WEBHOOK) == "failed"
    b = Company.objects.get(pk=b_explodes["B"].pk)
    assert b.last_check_outcome == "failed" and "RuntimeError: boom" in b.last_check_error
    assert b.lease_token is None  # the run's lease was released


def test_the_logged_traceback_masks_the_credentials_secrets(b_explodes, fake, caplog):
    run_company_checks([b_explodes["B"].pk], Trigger.SCHEDULE)
    logged = [r for r in caplog.records if r.name == "exports.services.company_guard"]
    assert logged and logged[0].levelname == "ERROR"
    text = logged[0].getMessage()
    assert "Traceback" in text and "RuntimeError: boom" in text and "[secret]" in text
    # (and the autouse _no_secret_in_logs fixture fails the test if the key is anywhere in logs)


# --- Refused where it enters -------------------------------------------------------------------


def test_add_company_refuses_an_ftp_base_url_with_exit_2(capsys):
    with pytest.raises(CommandError) as refused:
        call_command(
            "add_company",
            "--name",
            "Acme",
            "--pleo-company-id",
            str(uuid.uuid4()),
            "--api-key",
            "pk_test_ftp_refused",
            "--api-base-url",
            "ftp://x",
        )
    assert refused.value.returncode == 2
    assert str(refused.value).startswith("--api-base-url: The API base URL is refused")
    assert "must start with https://" in str(refused.value)
    assert not Company.objects.exists() and not Credential.objects.exists()
