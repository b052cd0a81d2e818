"""The credential's admin form and page (issue 17 §8, §9): thin, the work is in services.

* The form: secrets write-only (blank keeps the stored value), the API and OAuth base URL
  overrides checked against the Pleo host allow-list, and changing either URL needs the secret
  that would go there entered again. The help text shows the URL in use.
* Saving a new or changed key tests it against Pleo (one list call,
  ``exports.services.credentials.credential_test_connection``) and says clearly when Pleo refuses
  it (the credential is still saved, and marked invalid).
* The change page: the status as a banner at the top, and "Test connection" and "Subscribe
  webhooks" buttons (POST, CSRF-checked by the admin, permission-checked, company-scoped).
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST

from exports import crypto, validators
from exports.models import Credential
from exports.selectors.company_access import credentials_visible_to

TEST_PERMISSION = "exports.change_credential"
WEBHOOKS_PERMISSION = "exports.manage_webhooks"


def _stored_hint(instance, field: str) -> str:
    if instance is None or instance.pk is None:
        return ""
    if not getattr(instance, f"{field}_ciphertext"):
        return "Nothing stored yet."
    try:
        return f"Stored: {crypto.secret_hint(getattr(instance, field))}. Leave blank to keep it."
    except (crypto.SecretDecryptionError, crypto.EncryptionKeysMissing) as exc:
        return f"Stored, but unreadable: {exc}"


_SECRET_COLUMNS = tuple(f"{name}_ciphertext" for name in Credential.SECRET_FIELDS)
_TOKEN_COLUMNS = ("access_token_ciphertext", "refresh_token_ciphertext")


def _url_help(setting: str, value: str, override: str) -> str:
    in_use = override or value
    return (
        f"Blank: the {setting} setting ({value}). In use now: {in_use}. Only a Pleo host of "
        f"PLEO_ALLOWED_HOSTS, over https; changing it needs the secret entered again."
    )


class CredentialForm(forms.ModelForm):
    """Secret fields are never rendered back; blank keeps the stored value."""

    WRITE_ONLY = ("api_key", "oauth_client_secret")

    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )
    oauth_client_secret = forms.CharField(
        label="OAuth client secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )

    api_base_url = forms.URLField(
        label="API base URL override",
        required=False,
        assume_scheme="https",
        max_length=Credential._meta.get_field("api_base_url").max_length,
    )
    oauth_base_url = forms.URLField(
        label="OAuth base URL override",
        required=False,
        assume_scheme="https",
        max_length=Credential._meta.get_field("oauth_base_url").max_length,
    )

    class Meta:
        model = Credential
        fields = [
            "name",
            "kind",
            "api_key",
            "oauth_client_id",
            "oauth_client_secret",
            "api_base_url",
            "oauth_base_url",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.WRITE_ONLY:
            hint = _stored_hint(self.instance, field)
            if hint:
                self.fields[field].help_text = hint
        self.fields["api_base_url"].help_text = _url_help(
            "PLEO_API_BASE_URL", settings.PLEO_API_BASE_URL, self.instance.api_base_url
        )
        self.fields["oauth_base_url"].help_text = (
            _url_help(
                "PLEO_OAUTH_BASE_URL", settings.PLEO_OAUTH_BASE_URL, self.instance.oauth_base_url
            )
            + " Changing it also drops the stored tokens: connect to Pleo again."
        )

    def clean_api_base_url(self):
        value = self.cleaned_data.get("api_base_url") or ""
        validators.validate_pleo_base_url(value)
        return value

    def clean_oauth_base_url(self):
        value = (self.cleaned_data.get("oauth_base_url") or "").rstrip("/")
        validators.validate_pleo_base_url(value, label="The OAuth base URL")
        return value

    def clean_api_key(self):
        value = self.cleaned_data.get("api_key") or ""
        validators.validate_secret_text(value, label="The API key")
        return value

    def clean_oauth_client_secret(self):
        value = self.cleaned_data.get("oauth_client_secret") or ""
        validators.validate_secret_text(value, label="The client secret")
        return value

    def clean(self):
        cleaned = super().clean()
        self._secret_again_for_a_new_base_url(cleaned)
        self._secret_again_for_a_new_oauth_url(cleaned)
        kind = cleaned.get("kind")
        has_key = bool(cleaned.get("api_key")) or bool(self.instance.api_key_ciphertext)
        if kind == Credential.Kind.API_KEY and not has_key:
            self.add_error("api_key", "An API-key credential needs its API key.")
        if kind == Credential.Kind.OAUTH and not cleaned.get("oauth_client_id"):
            self.add_error("oauth_client_id", "An OAuth credential needs its client id.")
        return cleaned

    def _secret_again_for_a_new_base_url(self, cleaned) -> None:
        """A stored secret is never sent to a new address on the strength of a URL edit alone:
        whoever changes the base URL enters the secret again (issue 15 §3)."""
        credential = self.instance
        if credential.pk is None or "api_base_url" not in self.changed_data:
            return
        if not any(getattr(credential, column) for column in _SECRET_COLUMNS):
            return
        if cleaned.get("kind") == Credential.Kind.OAUTH:
            field, label = "oauth_client_secret", "OAuth client secret"
        else:
            field, label = "api_key", "API key"
        if not cleaned.get(field):
            self.add_error(
                field,
                f"The API base URL changed, so enter the {label} again: a stored secret is "
                f"never sent to a new address on a URL edit alone.",
            )

    def _secret_again_for_a_new_oauth_url(self, cleaned) -> None:
        """The same rule for the OAuth base URL: the client secret goes there."""
        credential = self.instance
        if credential.pk is None or "oauth_base_url" not in self.changed_data:
            return
        if not any(getattr(credential, column) for column in _SECRET_COLUMNS):
            return
        if not cleaned.get("oauth_client_secret"):
            self.add_error(
                "oauth_client_secret",
                "The OAuth base URL changed, so enter the OAuth client secret again: a stored "
                "secret is never sent to a new address on a URL edit alone.",
            )

    def save(self, commit=True):
        credential = super().save(commit=False)
        changed_secret = False
        for field in self.WRITE_ONLY:
            value = self.cleaned_data.get(field)
            if value:
                setattr(credential, field, value)
                changed_secret = True
        if credential.pk is not None and "oauth_base_url" in self.changed_data:
            # Tokens belong to the OAuth server that issued them: none is sent to another.
            for column in _TOKEN_COLUMNS:
                setattr(credential, column, "")
            credential.access_token_expires_at = None
        if changed_secret or self.has_changed():
            # An operator edited it: calls may be made with it again (foundation rule).
            if credential.status == Credential.Status.INVALID:
                credential.status = Credential.Status.OK
                credential.last_error = ""
        if commit:
            credential.save()
        return credential

    @property
    def wants_connection_test(self) -> bool:
        """A new credential, a new secret, or a new address or kind: test it on save."""
        if not self.instance.pk or "kind" in self.changed_data:
            return True
        watched = {"api_key", "oauth_client_secret", "api_base_url", "oauth_client_id"}
        return bool(watched & set(self.changed_data))


def credential_fieldsets(obj) -> list:
    """A new credential has no status yet: the Status fieldset is on the change page only."""
    fieldsets = [
        (None, {"fields": ["name", "kind", "api_base_url"]}),
        ("API key", {"fields": ["api_key"]}),
        (
            "OAuth 2.0",
            {
                "fields": [
                    "oauth_client_id",
                    "oauth_client_secret",
                    "oauth_base_url",
                    "token_state",
                ]
            },
        ),
    ]
    if obj is not None and obj.pk:
        fieldsets.append(
            (
                "Status",
                {
                    "fields": [
                        "status",
                        "last_error",
                        "status_changed_at",
                        "connection_test",
                        "request_budget",
                        "rejected_requests",
                    ]
                },
            )
        )
    return fieldsets


def status_banner(credential: Credential) -> dict | None:
    """What the top of the change page says about the credential: ``{"level", "text"}``."""
    if credential.status == Credential.Status.NEEDS_REAUTHORISATION:
        return None  # the OAuth re-authorisation banner says it, with its button
    if credential.status == Credential.Status.INVALID:
        return {
            "level": "error",
            "text": f"Invalid: {credential.last_error or 'Pleo refused this credential.'} No "
            f"call is made with it until its secret is entered again.",
        }
    checked = credential.connection_checked_at
    if checked is None:
        return {
            "level": "warning",
            "text": "Not tested yet: use Test connection to ask Pleo whether it accepts it.",
        }
    result = credential.connection_check_result
    level = "success" if " accepted " in f" {result} " else "warning"
    return {
        "level": level,
        "text": f"{result} (tested {checked:%Y-%m-%d %H:%M:%S} UTC)",
    }


class CredentialPageMixin:
    """For ``CredentialAdmin``: the page's buttons, banner and the test on save."""

    def get_fieldsets(self, request, obj=None):
        return credential_fieldsets(obj)

    def get_urls(self):
        return [
            path(
                "<int:credential_id>/test-connection/",
                self.admin_site.admin_view(self.test_connection_view),
                name="exports_credential_test_connection",
            ),
            path(
                "<int:credential_id>/subscribe-webhooks/",
                self.admin_site.admin_view(self.subscribe_webhooks_view),
                name="exports_credential_subscribe_webhooks",
            ),
        ] + super().get_urls()

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        if obj is not None and obj.pk:
            context["credential_banner"] = status_banner(obj)
            context["can_test_connection"] = request.user.has_perm(TEST_PERMISSION)
            context["can_subscribe_webhooks"] = request.user.has_perm(WEBHOOKS_PERMISSION)
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if getattr(form, "wants_connection_test", False):
            self._report_connection_test(request, obj, saved=True)

    def _report_connection_test(self, request, credential, *, saved: bool) -> None:
        from exports.services.credentials import ConnectionOutcome, credential_test_connection

        check = credential_test_connection(credential=credential)
        credential.refresh_from_db()
        prefix = "Saved, but " if saved else ""
        if check.outcome == ConnectionOutcome.ACCEPTED:
            self.message_user(request, check.message, messages.SUCCESS)
        elif check.outcome == ConnectionOutcome.REFUSED:
            marked = (
                " It is marked invalid: no call is made with it until its secret is entered again."
                if credential.status == Credential.Status.INVALID
                else ""
            )
            self.message_user(
                request, f"{prefix}{_lower_first(check.message)}{marked}", messages.WARNING
            )
        else:
            self.message_user(request, f"{prefix}{_lower_first(check.message)}", messages.WARNING)

    def _credential_for_button(self, request, credential_id: int, permission: str, what: str):
        credential = get_object_or_404(credentials_visible_to(user=request.user), pk=credential_id)
        if not request.user.has_perm(permission):
            self.message_user(request, f"You may not {what}.", messages.ERROR)
            return credential, False
        return credential, True

    @method_decorator(require_POST)
    def test_connection_view(self, request, credential_id: int):
        """The "Test connection" button: one list call to Pleo, the answer as a message."""
        credential, allowed = self._credential_for_button(
            request, credential_id, TEST_PERMISSION, "test credentials against Pleo"
        )
        if allowed:
            self._report_connection_test(request, credential, saved=False)
        return redirect(_change_page(credential.pk))

    @method_decorator(require_POST)
    def subscribe_webhooks_view(self, request, credential_id: int):
        """The "Subscribe webhooks" button: the list action's service, for this credential."""
        credential, allowed = self._credential_for_button(
            request, credential_id, WEBHOOKS_PERMISSION, "subscribe webhooks"
        )
        if allowed:
            self._webhook_action(request, [credential], "webhooks_subscribe", "subscribing")
        return redirect(_change_page(credential.pk))

    def connection_test(self, obj):
        if not obj or not obj.pk or obj.connection_checked_at is None:
            return "Not tested yet."
        return f"{obj.connection_checked_at:%Y-%m-%d %H:%M:%S} UTC: {obj.connection_check_result}"

    connection_test.short_description = "Last connection test"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != "Pl" else text


def _change_page(credential_id: int) -> str:
    return reverse("admin:exports_credential_change", args=[credential_id])
