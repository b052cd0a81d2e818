import uuid

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.urls import reverse

from exports.models import AuditEntry, AuditStep, Credential, Trigger
from tests.admin_forms import credential_form
from tests.factories import make_audit, make_company, make_credential, make_job, make_staff

pytestmark = pytest.mark.django_db


def test_credential_page_masks_secret_and_blank_keeps_it(admin_client):
    credential = make_credential(api_key="pk_test_visible_only_last4_WXYZ")
    url = reverse("admin:exports_credential_change", args=[credential.pk])
    page = admin_client.get(url).content.decode()
    assert "pk_test_visible" not in page
    assert "••••WXYZ" in page

    response = admin_client.post(
        url,
        credential_form(credential, name="Renamed"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    credential.refresh_from_db()
    assert credential.name == "Renamed"
    assert credential.api_key == "pk_test_visible_only_last4_WXYZ"


def test_new_secret_replaces_and_reenables_invalid_credential(admin_client):
    credential = make_credential(status=Credential.Status.INVALID, last_error="401 from Pleo")
    url = reverse("admin:exports_credential_change", args=[credential.pk])
    response = admin_client.post(
        url,
        credential_form(credential, api_key="pk_test_replacement_key_1111"),
    )
    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.api_key == "pk_test_replacement_key_1111"
    assert credential.status == Credential.Status.OK


def test_list_and_search_pages_show_no_secret(admin_client):
    make_company(credential=make_credential(api_key="pk_test_list_page_secret_2222"))
    for name in ("credential", "company"):
        page = admin_client.get(reverse(f"admin:exports_{name}_changelist") + "?q=pk_test").content
        assert b"pk_test_list_page_secret" not in page
        assert admin_client.get(reverse(f"admin:exports_{name}_changelist")).status_code == 200


def test_audit_table_is_read_only_for_everyone(admin_client):
    company = make_company()
    entry = make_audit(company, "selected", "m", trigger=Trigger.MANUAL)
    model_admin = admin.site._registry[AuditEntry]
    request = type("R", (), {"user": User.objects.get(username="root")})()
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, entry)
    assert not model_admin.has_delete_permission(request, entry)
    changelist = admin_client.get(reverse("admin:exports_auditentry_changelist"))
    assert changelist.status_code == 200
    assert b"selected" in changelist.content
    detail = admin_client.get(reverse("admin:exports_auditentry_change", args=[entry.pk]))
    assert detail.status_code == 200
    assert b'type="submit" value="Save"' not in detail.content


def test_audit_table_filters_by_step(admin_client):
    company = make_company()
    for step, message in ((AuditStep.SELECTED, "picked-it"), (AuditStep.PAUSED, "held-it")):
        make_audit(company, step, message, trigger=Trigger.MANUAL)
    url = reverse("admin:exports_auditentry_changelist")
    page = admin_client.get(url).content.decode()
    offered = {step for step in AuditStep.values if f'href="?step__exact={step}"' in page}
    assert offered == set(AuditStep.values)  # every step, written yet or not
    page = admin_client.get(url, {"step__exact": AuditStep.PAUSED}).content.decode()
    assert "held-it" in page and "picked-it" not in page


def test_job_page_shows_its_audit_trail(admin_client):
    company = make_company()
    job = make_job(company)
    make_audit(company, "started", "Pleo accepted", trigger=Trigger.WEBHOOK, export_job=job)
    page = admin_client.get(
        reverse("admin:exports_exportjob_change", args=[job.pk])
    ).content.decode()
    assert "Pleo accepted" in page


def test_every_admin_action_is_registered_and_reachable(admin_client):
    """dj-stripe's weak spot: an action that was never registered. Every action must be listed."""
    from exports import clock
    from exports.models import WebhookDelivery, XeroConnection

    company = make_company()
    job = make_job(company)
    job.item_records.create(accounting_entry_id=uuid.uuid4(), idempotency_key="k-actions")
    XeroConnection.objects.create(company=company)  # a list shows its actions with rows only
    WebhookDelivery.objects.create(
        endpoint=company.credential.webhook_endpoint,
        webhook_id="msg_1",
        webhook_timestamp=clock.now(),
        body="{}",
        received_at=clock.now(),
    )
    checked = 0
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != "exports":
            continue
        url = reverse(f"admin:exports_{model._meta.model_name}_changelist")
        response = admin_client.get(url)
        assert response.status_code == 200, url
        declared = [a if isinstance(a, str) else a.__name__ for a in (model_admin.actions or [])]
        for action in declared:
            assert f'value="{action}"' in response.content.decode(), (model, action)
            checked += 1
    assert checked >= 7


@pytest.fixture
def staff_client(client):
    client.force_login(make_staff("clerk", "view_company", "change_company"))
    return client


def test_check_now_needs_its_permission(staff_client, sent):
    company = make_company()
    page = staff_client.get(reverse("admin:exports_company_changelist")).content.decode()
    assert 'value="check_now"' not in page
    staff_client.post(reverse("admin:exports_company_check_now", args=[company.pk]))
    assert sent == []


def test_check_now_only_enqueues(
    admin_client, monkeypatch, sent, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(
        "requests.Session.request", lambda *a, **k: pytest.fail("no Pleo call in the admin")
    )
    first, second = make_company(name="A"), make_company(name="B")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:exports_company_changelist"),
            {"action": "check_now", "_selected_action": [first.pk, second.pk]},
            follow=True,
        )
    assert "2 companies queued for a check" in response.content.decode()
    assert sorted(args[1:4] for args in sent) == [  # (the last argument: the marker)
        (first.pk, "manual", False),
        (second.pk, "manual", False),
    ]
    # A second click while the first is still queued queues nothing more.
    response = admin_client.post(
        reverse("admin:exports_company_check_now", args=[first.pk]), {"recover": "1"}, follow=True
    )
    assert "already queued" in response.content.decode()
    assert len(sent) == 2


def test_company_page_shows_its_deliveries_newest_first(admin_client):
    from exports import clock
    from exports.models import WebhookDelivery

    company = make_company()
    for webhook_id in ("msg_older", "msg_newer"):
        clock.advance(60)
        WebhookDelivery.objects.create(
            endpoint=company.credential.webhook_endpoint,
            company=company,
            webhook_id=webhook_id,
            webhook_timestamp=clock.now(),
            event_type="v1.export-job.created",
            body="{}",
            received_at=clock.now(),
        )
    page = admin_client.get(
        reverse("admin:exports_company_change", args=[company.pk])
    ).content.decode()
    assert page.index("msg_newer") < page.index("msg_older")


def test_the_audit_table_gets_the_whole_width(admin_client):
    """No navigation sidebar beside the wide tables (the audit trail, the journal)."""
    response = admin_client.get("/admin/exports/auditentry/")
    assert response.status_code == 200
    assert 'id="nav-sidebar"' not in response.content.decode()
