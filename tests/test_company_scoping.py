"""Company-scoped staff see and act on their companies only.

The scene (tests/admin_scene.py): the scoped user's group is a member of Alpha and Charlie;
Bravo and Delta (``OUTSIDER``) are outside; Charlie shares its credential with Delta.
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse

from exports.admin.scoping import CompanyScopedAdminMixin
from exports.models import (
    Company,
    CompanyMembership,
    ExportJob,
    JournalEntry,
    WebhookDelivery,
)
from exports.selectors.company_access import (
    COMPANY_LOOKUPS,
    CREDENTIAL_LOOKUPS,
    UNSCOPED_EXPORTS_MODELS,
    company_list_for_user,
    credential_list_for_user,
)
from tests.admin_scene import OUTSIDER, build_scene

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene():
    return build_scene()


@pytest.fixture
def scoped_client(client, scene):
    client.force_login(scene.users["scoped"])
    return client


def _names(queryset):
    return sorted(obj.name for obj in queryset)


def test_who_sees_which_companies(scene):
    everyone = _names(Company.objects.all())
    assert _names(company_list_for_user(user=scene.users["scoped"])) == ["Alpha", "Charlie"]
    for role in ("superuser", "editor", "viewer"):
        assert _names(company_list_for_user(user=scene.users[role])) == everyone

    # A membership of the user's own adds to their groups'.
    own = CompanyMembership.objects.create(user=scene.users["scoped"])
    own.companies.add(scene.companies["bravo"])
    assert _names(company_list_for_user(user=scene.users["scoped"])) == [
        "Alpha",
        "Charlie",
        f"{OUTSIDER} Bravo",
    ]
    # Staff with neither a membership nor view_all_companies see none; nor does a disabled user.
    nobody = User.objects.create_user("nobody", is_staff=True)
    nobody.user_permissions.add(*Permission.objects.filter(codename="view_company"))
    assert not company_list_for_user(user=nobody).exists()
    scene.users["editor"].is_active = False
    assert not company_list_for_user(user=scene.users["editor"]).exists()


def test_a_credential_shared_with_an_outside_company_stays_outside(scene):
    """Changing it, or its webhooks, would change the outside company too."""
    visible = credential_list_for_user(user=scene.users["scoped"])
    assert list(visible) == [scene.credentials["own"]]


def test_lists_show_only_the_users_companies(scoped_client, scene):
    page = scoped_client.get(reverse("admin:exports_company_changelist")).content.decode()
    assert "Alpha" in page and "Charlie" in page and OUTSIDER not in page
    assert "2 companies" in page
    for model in ("exportjob", "auditentry", "webhookdelivery", "journalentry", "credential"):
        response = scoped_client.get(reverse(f"admin:exports_{model}_changelist"))
        assert response.status_code == 200
        assert OUTSIDER not in response.content.decode(), model
    csv = scoped_client.get(reverse("admin:exports_journalentry_csv")).content.decode()
    assert "Alpha lunch" in csv and "Charlie lunch" in csv and OUTSIDER not in csv


def test_another_companys_objects_are_not_found_by_direct_url(scoped_client, scene):
    bravo = scene.companies["bravo"]
    objects = [
        ("company", bravo.pk),
        ("exportjob", ExportJob.objects.get(company=bravo).pk),
        ("auditentry", bravo.audit_entries.get().pk),
        ("webhookdelivery", WebhookDelivery.objects.get(company=bravo).pk),
        ("journalentry", JournalEntry.objects.get(company=bravo).pk),
        ("credential", scene.credentials["foreign"].pk),
        ("credential", scene.credentials["shared"].pk),  # serves Delta too
    ]
    for model, pk in objects:
        for view in ("change", "history", "delete"):
            response = scoped_client.get(reverse(f"admin:exports_{model}_{view}", args=[pk]))
            # Django's "does not exist" answer, as for an id never used (403: no one may delete).
            assert response.status_code in (302, 403), (model, view)
            if response.status_code == 302:
                assert response.url == reverse("admin:index"), (model, view)
    check_now = reverse("admin:exports_company_check_now", args=[bravo.pk])
    assert scoped_client.post(check_now).status_code == 404
    connect = reverse(
        "admin:exports_credential_oauth_connect", args=[scene.credentials["foreign"].pk]
    )
    assert scoped_client.post(connect).status_code == 404


def test_filters_offer_no_other_company_and_filtering_by_one_shows_nothing(scoped_client, scene):
    bravo, delta = scene.companies["bravo"], scene.companies["delta"]
    shared = scene.credentials["shared"]
    checks = {
        "company": [f"credential__id__exact={shared.pk}"],
        "exportjob": [f"company__id__exact={bravo.pk}", f"company__id__exact={delta.pk}"],
        "auditentry": [f"company__id__exact={bravo.pk}"],
        "webhookdelivery": [f"company__id__exact={bravo.pk}"],
        "journalentry": [
            f"company__id__exact={bravo.pk}",
            f"export_job__id__exact={ExportJob.objects.get(company=bravo).pk}",
        ],
    }
    for model, links in checks.items():
        url = reverse(f"admin:exports_{model}_changelist")
        page = scoped_client.get(url).content.decode()
        for link in links:
            assert link not in page, (model, link)
            filtered = scoped_client.get(f"{url}?{link}").content.decode()
            assert OUTSIDER not in filtered, (model, link)
    own = f"company__id__exact={scene.companies['alpha'].pk}"
    assert own in scoped_client.get(reverse("admin:exports_exportjob_changelist")).content.decode()
    csv = scoped_client.get(
        reverse("admin:exports_journalentry_csv") + f"?company__id__exact={bravo.pk}"
    ).content.decode()
    assert len(csv.strip().splitlines()) == 1  # the header only


def test_actions_on_other_companies_do_nothing(
    scoped_client, scene, sent, monkeypatch, django_capture_on_commit_callbacks
):
    alpha, bravo = scene.companies["alpha"], scene.companies["bravo"]
    url = reverse("admin:exports_company_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        scoped_client.post(url, {"action": "check_now", "_selected_action": [alpha.pk, bravo.pk]})
        scoped_client.post(
            url,
            {"action": "check_now_recover", "select_across": "1", "_selected_action": [bravo.pk]},
        )
    assert sorted({args[1] for args in sent}) == [alpha.pk, scene.companies["charlie"].pk]

    delivery = WebhookDelivery.objects.get(company=bravo)
    scoped_client.post(
        reverse("admin:exports_webhookdelivery_changelist"),
        {"action": "reprocess", "_selected_action": [delivery.pk]},
    )
    delivery.refresh_from_db()
    assert delivery.state == WebhookDelivery.State.FAILED

    job = ExportJob.objects.get(company=bravo)
    job.claim = ExportJob.Claim.ELSEWHERE
    job.save()
    scoped_client.post(
        reverse("admin:exports_exportjob_changelist"),
        {"action": "adopt_job", "_selected_action": [job.pk]},
    )
    job.refresh_from_db()
    assert job.claim == ExportJob.Claim.ELSEWHERE

    called = []
    monkeypatch.setattr(
        "exports.services.subscriptions.webhooks_subscribe",
        lambda credential, **k: called.append(credential) or "ok",
    )
    scoped_client.post(
        reverse("admin:exports_credential_changelist"),
        {
            "action": "subscribe_webhooks",
            "_selected_action": [c.pk for c in scene.credentials.values()],
        },
    )
    assert called == [scene.credentials["own"]]


def test_the_index_status_panel_shows_only_the_users_companies(client, scene):
    client.force_login(scene.users["scoped"])
    page = client.get(reverse("admin:index")).content.decode()
    shown = {c.pk for c in Company.objects.all() if f'data-company="{c.pk}"' in page}
    assert shown == {scene.companies["alpha"].pk, scene.companies["charlie"].pk}
    assert "2 active companies" in page
    client.force_login(scene.users["viewer"])
    assert "4 active companies" in client.get(reverse("admin:index")).content.decode()


def test_scoped_user_adds_no_company_nor_credential_and_moves_no_company(scoped_client, scene):
    for model in ("company", "credential"):
        assert scoped_client.get(reverse(f"admin:exports_{model}_add")).status_code == 403
    alpha = scene.companies["alpha"]
    url = reverse("admin:exports_company_change", args=[alpha.pk])
    page = scoped_client.get(url).content.decode()
    assert 'name="credential"' not in page  # shown read-only
    response = scoped_client.post(
        url,
        {
            "name": "Alpha renamed",
            "pleo_company_id": str(alpha.pleo_company_id),
            "active": "on",
            "credential": str(scene.credentials["foreign"].pk),
            "accounting_adapter": "journal",
        },
    )
    assert response.status_code == 302
    alpha.refresh_from_db()
    assert alpha.name == "Alpha renamed"
    assert alpha.credential == scene.credentials["own"]


def test_scoped_user_holds_no_permission_on_data_of_no_company(scoped_client, scene):
    """Granted everything but view_all_companies: the worker, task and user tables stay shut."""
    user = User.objects.get(pk=scene.users["scoped"].pk)
    assert user.has_perm("exports.view_company") and user.has_perm("exports.check_now")
    for perm in (
        "django_q.view_schedule",
        "django_q.add_schedule",
        "django_q.view_failure",
        "exports.view_workerheartbeat",
        "auth.change_user",
        "auth.change_group",
        "exports.change_companymembership",
    ):
        assert not user.has_perm(perm), perm
    for name in ("django_q_schedule", "django_q_failure", "exports_workerheartbeat", "auth_user"):
        assert scoped_client.get(reverse(f"admin:{name}_changelist")).status_code == 403, name


def test_memberships_are_edited_by_superusers_only(client, scene):
    editor = scene.users["editor"]
    editor.user_permissions.add(*Permission.objects.filter(codename__endswith="_companymembership"))
    client.force_login(User.objects.get(pk=editor.pk))
    url = reverse("admin:exports_companymembership_changelist")
    assert client.get(url).status_code == 403

    client.force_login(scene.users["superuser"])
    assert client.get(url).status_code == 200
    add = reverse("admin:exports_companymembership_add")
    alpha = scene.companies["alpha"]
    both = client.post(
        add,
        {
            "user": scene.users["viewer"].pk,
            "group": Group.objects.get().pk,
            "companies": [alpha.pk],
        },
    )
    assert both.status_code == 200  # refused: a user or a group, not both
    assert CompanyMembership.objects.count() == 1
    response = client.post(add, {"user": scene.users["viewer"].pk, "companies": [alpha.pk]})
    assert response.status_code == 302
    assert list(CompanyMembership.objects.get(user=scene.users["viewer"]).companies.all()) == [
        alpha
    ]


def _reaches_company(model, seen=()) -> bool:
    if model is Company:
        return True
    return any(
        _reaches_company(field.related_model, (*seen, model))
        for field in model._meta.get_fields()
        if field.many_to_one and field.concrete and field.related_model not in seen
    )


def test_every_model_tied_to_a_company_is_scoped_and_every_admin_applies_it():
    for model in apps.get_app_config("exports").get_models():
        label = model._meta.label_lower
        kinds = [label in COMPANY_LOOKUPS, label in CREDENTIAL_LOOKUPS]
        kinds.append(label in UNSCOPED_EXPORTS_MODELS)
        assert kinds.count(True) == 1, f"{label}: scoped by company, by credential, or unscoped?"
        if _reaches_company(model):
            assert label not in UNSCOPED_EXPORTS_MODELS, f"{label} belongs to a company"
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != "exports" or model is CompanyMembership:
            continue
        assert isinstance(model_admin, CompanyScopedAdminMixin), model
        for inline in model_admin.inlines:
            assert issubclass(inline, CompanyScopedAdminMixin), inline


def test_an_oauth_answer_for_a_credential_outside_the_scope_changes_nothing(
    scoped_client, scene, monkeypatch
):
    """Even with a pending attempt for it in the session (started before the scope changed)."""
    import time

    from exports.oauth_views import SESSION_KEY

    exchanged = []
    monkeypatch.setattr(
        "exports.services.oauth.oauth_connect_complete", lambda **kwargs: exchanged.append(kwargs)
    )
    foreign = scene.credentials["foreign"]
    session = scoped_client.session
    session[SESSION_KEY] = {
        "s1": {
            "verifier": "v",
            "credential_id": foreign.pk,
            "client_id": foreign.oauth_client_id,
            "created": time.time(),
        }
    }
    session.save()
    before = foreign.access_token_ciphertext
    response = scoped_client.get(reverse("pleo-oauth-callback") + "?state=s1&code=c", follow=True)
    assert "You may not connect credentials to Pleo." in response.content.decode()
    assert exchanged == []
    foreign.refresh_from_db()
    assert foreign.access_token_ciphertext == before
