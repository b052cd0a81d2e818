"""Every admin page × every role shows no secret, and a company-scoped user
nothing of another company.

Pages are discovered, not listed: every URL of ``admin.site`` (the index, app lists, every model
admin's own URLs: list, add, change, history, delete, and custom views such as Check now, the
journal CSV and Connect to Pleo), filled in with every object, plus the delete-selected
confirmation of every list. A page added later is covered without touching this file; a URL
parameter the walk does not know fails the test, naming it.
"""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import URLPattern, URLResolver, reverse

from exports.models import Company, Credential, ExportJob, Receipt
from exports.selectors.company_access import model_is_scopable, queryset_for_user
from tests.admin_forms import credential_form
from tests.admin_scene import OUTSIDER, build_scene

pytestmark = pytest.mark.django_db

ROLES = ("superuser", "editor", "viewer", "scoped")
_PARAM = re.compile(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>[^)]*\)")


def _routes(patterns, prefix=""):
    """``(route, model or None)`` of every leaf URL under ``patterns``."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern).lstrip("^").rstrip("$")
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route


def _model_of(route: str):
    app_label, _, rest = route.partition("/")
    model_name = rest.partition("/")[0]
    try:
        return apps.get_model(app_label, model_name)
    except (LookupError, ValueError):
        return None


def _object_ids(model, scene) -> list[str]:
    """Every company and credential; of other models one row inside the scoped user's scope and
    one outside (or the first row): the same page of more rows of one kind adds little."""
    rows = model._default_manager.order_by("pk")
    if model in (Company, Credential):
        return [str(pk) for pk in rows.values_list("pk", flat=True)]
    if not model_is_scopable(model):
        return [str(pk) for pk in rows.values_list("pk", flat=True)[:1]]
    inside = queryset_for_user(queryset=rows, user=scene.users["scoped"])
    picked = [inside.first(), rows.exclude(pk__in=inside.values("pk")).first()]
    return [str(obj.pk) for obj in picked if obj is not None]


def _fill(route: str, scene) -> list[str]:
    """Every concrete URL of ``route``, its parameters filled in with the scene's objects."""
    names = [a or b for a, b in _PARAM.findall(route)]
    if not names:
        return [route]
    model = _model_of(route)
    values: dict[str, list[str]] = {}
    for name in names:
        if name in ("object_id", "id") and model is not None:
            values[name] = _object_ids(model, scene)
        elif name == "company_id":
            values[name] = [str(c.pk) for c in scene.companies.values()]
        elif name == "credential_id":
            values[name] = [str(c.pk) for c in scene.credentials.values()]
        elif name == "app_label":
            values[name] = sorted({m._meta.app_label for m in admin.site._registry})
        elif name == "url":  # the catch-all: an unknown admin URL
            values[name] = ["no-such-page/"]
        elif name in ("content_type_id", "object_id"):  # view on site: no model has one
            values[name] = []
        else:
            pytest.fail(f"the matrix does not know the URL parameter {name!r} of {route!r}")
    urls = [route]
    for name in names:
        urls = [
            _PARAM.sub(lambda m, n=name, v=v: v if (m.group(1) or m.group(2)) == n else m[0], url)
            for url in urls
            for v in values[name]
        ]
    return urls


def admin_pages(scene) -> list[str]:
    base = reverse("admin:index")
    return [base + url for route in _routes(admin.site.get_urls()) for url in _fill(route, scene)]


@pytest.fixture
def scene(client):
    scene = build_scene()
    # History with a real change: a superuser sets a new API key through the form.
    credential = scene.credentials["own"]
    client.force_login(scene.users["superuser"])
    from tests import secrets_registry

    new_key = secrets_registry.register("pk_live_changed_through_the_form_Z9Y8X7W6")
    scene.secrets.append(new_key)
    response = client.post(
        reverse("admin:exports_credential_change", args=[credential.pk]),
        credential_form(credential, api_key=new_key, api_base_url=""),
    )
    assert response.status_code == 302, response.content.decode()[:500]
    client.logout()
    return scene


def _body(response) -> str:
    """The page, or a download's bytes (a streamed file: a receipt, an audit pack)."""
    if not hasattr(response, "_text"):
        raw = b"".join(response.streaming_content) if response.streaming else response.content
        response._text = raw.decode(errors="replace")
    return response._text


def _leaks(response, scene) -> list[str]:
    text = _body(response) + " ".join(f"{k}: {v}" for k, v in response.headers.items())
    return [secret[:8] + "…" for secret in scene.secrets if secret in text]


def _delete_confirmations(client, scene):
    """The delete-selected confirmation page of every list that offers it, for all rows."""
    for model, model_admin in admin.site._registry.items():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        pks = [str(pk) for pk in model._default_manager.values_list("pk", flat=True)]
        if pks:
            yield url, client.post(url, {"action": "delete_selected", "_selected_action": pks})


@pytest.mark.parametrize("role", ROLES)
def test_no_admin_page_shows_a_secret_or_another_companys_rows(client, scene, role):
    user = scene.users[role]
    client.force_login(user)
    pages = admin_pages(scene)
    assert len(pages) > 100  # the walk found the pages (each object's change, history, delete…)
    problems = []
    responses = ((url, client.get(url)) for url in pages)
    for url, response in [*responses, *_delete_confirmations(client, scene)]:
        if response.status_code >= 500:
            problems.append(f"{url}: {response.status_code}")
        leaked = _leaks(response, scene)
        if leaked:
            problems.append(f"{url}: secrets {leaked}")
        if role == "scoped" and OUTSIDER in _body(response):
            problems.append(f"{url}: shows another company's rows")
    assert not problems, "\n".join(problems)


def test_the_walk_reaches_every_custom_admin_view(scene):
    """The custom views are in the walk (so a new one is too): Check now, CSV, Connect to Pleo,
    a receipt's download, a job's audit pack."""
    pages = admin_pages(scene)
    company, credential = scene.companies["alpha"], scene.credentials["own"]
    for expected in (
        reverse("admin:exports_company_check_now", args=[company.pk]),
        reverse("admin:exports_journalentry_csv"),
        reverse("admin:exports_credential_oauth_connect", args=[credential.pk]),
        reverse("admin:exports_receipt_download", args=[Receipt.objects.order_by("pk").first().pk]),
        reverse(
            "admin:exports_exportjob_audit_pack", args=[ExportJob.objects.order_by("pk").first().pk]
        ),
        reverse("admin:exports_credential_history", args=[credential.pk]),
        reverse("admin:exports_companymembership_changelist"),
        reverse("admin:django_q_schedule_changelist"),
        reverse("admin:app_list", args=["exports"]),
        reverse("admin:index"),
    ):
        assert expected in pages, expected


# Role -> (status inside the scoped user's companies, status outside) of a receipt's download and
# a job's audit pack: both need their named permission (the editor and the viewer lack it) and a
# company the user may see (404 outside it, as for any other row).
DOWNLOAD_STATUS = {
    "superuser": (200, 200),
    "editor": (403, 403),
    "viewer": (403, 403),
    "scoped": (200, 404),
}


@pytest.mark.parametrize("role", ROLES)
def test_receipt_downloads_and_audit_packs_need_the_permission_and_the_company(client, scene, role):
    client.force_login(scene.users[role])
    inside, outside = DOWNLOAD_STATUS[role]
    for company in [*scene.inside, *scene.outside]:
        expected = inside if company in scene.inside else outside
        receipt = Receipt.objects.get(company=company)
        job = ExportJob.objects.get(company=company)
        download = client.get(reverse("admin:exports_receipt_download", args=[receipt.pk]))
        pack = client.get(reverse("admin:exports_exportjob_audit_pack", args=[job.pk]))
        assert (download.status_code, pack.status_code) == (expected, expected), company.name
        if expected != 200:
            continue
        label = OUTSIDER if company in scene.outside else company.name
        assert b"".join(download.streaming_content) == f"%PDF-1.4 {label} receipt".encode()
        assert download["X-Content-Type-Options"] == "nosniff"
        assert download["Content-Disposition"].startswith('attachment; filename="receipt-')
        with zipfile.ZipFile(io.BytesIO(b"".join(pack.streaming_content))) as archive:
            texts = [archive.read(name).decode(errors="replace") for name in archive.namelist()]
        assert company.name in texts[archive.namelist().index("manifest.json")]
        if role == "scoped":
            assert not any(OUTSIDER in text for text in texts), company.name
