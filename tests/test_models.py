import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError
from django.db.models import ProtectedError

from exports import audit, clock
from exports.models import AuditEntry, Company, Trigger, WebhookDelivery
from tests.factories import make_company, make_credential, make_job

pytestmark = pytest.mark.django_db


def _entry(company, **extra):
    return audit.record(
        company=company,
        trigger=Trigger.MANUAL,
        step="selected",
        message="m",
        run_id=uuid.uuid4(),
        **extra,
    )


def test_audit_entries_cannot_be_changed_or_deleted():
    company = make_company()
    entry = _entry(company)
    entry.message = "changed"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        AuditEntry.objects.filter(pk=entry.pk).update(message="changed")
    with pytest.raises(PermissionError):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.get(pk=entry.pk).message == "m"


def test_audit_rows_protect_company_and_job_from_deletion():
    company = make_company()
    job = make_job(company)
    _entry(company, export_job=job)
    with pytest.raises(ProtectedError):
        job.delete()
    with pytest.raises(ProtectedError):
        company.delete()
    assert Company.objects.filter(pk=company.pk).exists()


def test_worker_identity_is_recorded():
    entry = _entry(make_company())
    assert ":" in entry.worker


def test_pleo_ids_are_unique():
    company = make_company()
    with pytest.raises(IntegrityError):
        make_company(name="Other", pleo_company_id=company.pleo_company_id)


def test_job_ids_are_unique():
    company = make_company()
    job = make_job(company)
    with pytest.raises(IntegrityError):
        make_job(company, pleo_job_id=job.pleo_job_id)


def test_prune_history_removes_only_old_rows():
    company = make_company()
    old = _entry(company)
    clock.advance(91 * 86400)
    recent = _entry(company)
    endpoint = company.credential.webhook_endpoint
    for age_days, webhook_id in ((8, "old"), (1, "new")):
        WebhookDelivery.objects.create(
            endpoint=endpoint,
            webhook_id=webhook_id,
            webhook_timestamp=clock.now(),
            body="{}",
            received_at=clock.now() - timedelta(days=age_days),
        )
    call_command("prune_history")
    assert not AuditEntry.objects.filter(pk=old.pk).exists()
    assert AuditEntry.objects.filter(pk=recent.pk).exists()
    assert list(WebhookDelivery.objects.values_list("webhook_id", flat=True)) == ["new"]


def test_prune_history_refuses_to_forget_webhook_ids_too_early():
    with pytest.raises(CommandError, match="at least 7"):
        call_command("prune_history", "--webhook-days", "2")


def test_secrets_never_in_str_or_repr():
    credential = make_credential(api_key="pk_test_never_in_repr_0001")
    assert "pk_test" not in str(credential)
    assert "pk_test" not in repr(credential)
    assert "pk_test" not in str(credential.companies.model)


def test_webhook_delivery_ids_unique_per_endpoint():
    company = make_company()
    endpoint = company.credential.webhook_endpoint
    kwargs = dict(
        webhook_id="msg_1", webhook_timestamp=clock.now(), body="{}", received_at=clock.now()
    )
    WebhookDelivery.objects.create(endpoint=endpoint, **kwargs)
    with pytest.raises(IntegrityError):
        WebhookDelivery.objects.create(endpoint=endpoint, **kwargs)
