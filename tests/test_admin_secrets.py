"""No secret is ever rendered in the admin, whoever looks (at most its last 4)."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from exports.models import Credential
from tests import secrets_registry
from tests.factories import make_credential

pytestmark = pytest.mark.django_db


@pytest.fixture
def view_only_client(client):
    user = User.objects.create_user("viewer", "v@example.com", "pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="exports", codename__startswith="view_")
    )
    client.force_login(user)
    return client


def test_view_only_staff_sees_no_plaintext_secret_on_a_credential_page(view_only_client):
    api_key = secrets_registry.register("pk_test_view_only_must_not_see_KEY9")
    client_secret = secrets_registry.register("oauth_secret_view_only_must_not_see_SEC7")
    credential = make_credential(api_key=api_key)
    credential.kind = Credential.Kind.OAUTH
    credential.oauth_client_id = "client-id-1"
    credential.oauth_client_secret = client_secret
    credential.save()

    response = view_only_client.get(
        reverse("admin:exports_credential_change", args=[credential.pk])
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert api_key not in page
    assert client_secret not in page
    assert "••••KEY9" in page
    assert "••••SEC7" in page


def _credential_holding_every_secret() -> tuple[Credential, list[str]]:
    values = [
        secrets_registry.register(f"{label}_{secrets_registry.new_api_key()}_{tail}")
        for label, tail in (("api", "AK01"), ("cs", "CS02"), ("at", "AT03"), ("rt", "RT04"))
    ]
    credential = make_credential(api_key=values[0])
    credential.oauth_client_secret, credential.access_token, credential.refresh_token = values[1:]
    credential.save()
    return credential, values


def test_every_registered_admin_passes_the_secret_check():
    from exports.admin.secrets import admin_secret_problems

    assert admin_secret_problems() == []


def test_an_admin_that_could_show_a_secret_is_refused():
    from django.contrib import admin
    from django.core.exceptions import ImproperlyConfigured

    from exports.admin.secrets import SecretHintsAdminMixin, admin_secret_problems

    site = admin.AdminSite(name="probe")

    class Bare(admin.ModelAdmin):
        list_display = ("name", "api_key")

    site.register(Credential, Bare)
    assert admin_secret_problems(site) == [
        "Bare shows exports.Credential without SecretHintsAdminMixin"
    ]

    class Shadowing(SecretHintsAdminMixin, admin.ModelAdmin):
        def api_key(self, obj):
            return obj.api_key

    with pytest.raises(ImproperlyConfigured, match="shadows a secret"):
        Shadowing(Credential, site)


def test_a_secret_named_in_any_field_list_renders_as_its_hint(rf):
    """Whatever someone lists later (columns, read-only fields), the page shows the hint."""
    from django.contrib import admin

    from exports.admin.secrets import SecretHintsAdminMixin

    credential, values = _credential_holding_every_secret()
    names = ("api_key", "oauth_client_secret", "access_token", "refresh_token")

    class Careless(SecretHintsAdminMixin, admin.ModelAdmin):
        list_display = ("name", *names)
        readonly_fields = names
        fields = ("name", *names)

    model_admin = Careless(Credential, admin.AdminSite(name="probe"))
    user = User.objects.create_superuser("root", "r@example.com", "pw")
    pages = []
    for view, args in ((model_admin.changelist_view, ()), (model_admin.change_view, ("1",))):
        request = rf.get("/")
        request.user = user
        request._messages = []
        args = (str(credential.pk),) if args else ()
        response = view(request, *args)
        pages.append(response.render().content.decode())
    for page in pages:
        assert not [value for value in values if value in page]
        for tail in ("AK01", "CS02", "AT03", "RT04"):
            assert f"••••{tail}" in page
