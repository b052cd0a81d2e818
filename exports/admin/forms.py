"""The admin's forms: the company's and the credential's.

The company's add/change form: what an operator fills in, and nothing internal.

The Pleo company id gets a field wide enough for a UUID and a hint where to find it. The run's
bookkeeping (the lease, recheck and queued-check markers, the unknown-status hold, timestamps) is
shown read-only in a collapsed "Internal state" fieldset at the end of the change page, and not
at all on the add page. Whatever fields the admin lists, these are moved there.

The credential's form: secrets write-only (a blank field keeps the stored value),
the API and OAuth base URL overrides checked against the Pleo host allow-list, and changing
either URL needs the secret that would go there entered again.
"""

from __future__ import annotations

from django import forms
from django.conf import settings

from exports import crypto, validators
from exports.adapters import adapter_choices
from exports.models import Company, Credential

INTERNAL_FIELDS = (
    "lease_holder",
    "lease_expires_at",
    "recheck_requested",
    "recheck_trigger",
    "work_pending",
    "check_queued_at",
    "check_picked_queued_at",
    "next_run_not_before",
    "unknown_status_job_id",
    "unknown_status",
    "unknown_status_since",
    "created_at",
    "updated_at",
)

PLEO_COMPANY_ID_HELP = (
    "The company's id in Pleo: a UUID of 36 characters (8-4-4-4-12 hex digits). Pleo's API shows "
    "it as companyId on every export job of the company (GET /v3/export-jobs) and in the "
    "export-job webhooks; Pleo support can also give it. It is not the company's registration "
    "number."
)
UUID_PLACEHOLDER = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"


class CompanyFormMixin:
    """For ``CompanyAdmin``: the UUID field and the internal fields out of the form."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "pleo_company_id" and field is not None:
            field.widget = forms.TextInput(
                attrs={
                    "size": 40,
                    "maxlength": 36,
                    "style": "width: 38ch; font-family: monospace",
                    "placeholder": UUID_PLACEHOLDER,
                    "spellcheck": "false",
                    "autocomplete": "off",
                }
            )
            field.help_text = PLEO_COMPANY_ID_HELP
        return field

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields + tuple(f for f in INTERNAL_FIELDS if f not in fields)

    def get_fieldsets(self, request, obj=None):
        fieldsets = []
        for name, options in super().get_fieldsets(request, obj):
            fields = [f for f in options.get("fields", ()) if f not in INTERNAL_FIELDS]
            if fields:
                fieldsets.append((name, {**options, "fields": fields}))
        if obj is not None and obj.pk:
            fieldsets.append(
                (
                    "Internal state (read-only)",
                    {
                        "classes": ["collapse"],
                        "description": "What the runs keep for this company: the lease that "
                        "lets one run at a time work on it, the queued and requested checks, and "
                        "a hold by a job in a status we do not know. Shown to explain what "
                        "happens; nothing here is edited.",
                        "fields": list(INTERNAL_FIELDS),
                    },
                )
            )
        return fieldsets


class CompanyForm(forms.ModelForm):
    """The accounting adapter is a select of the registered adapters (exports.adapters)."""

    accounting_adapter = forms.ChoiceField(
        label="Accounting adapter",
        choices=adapter_choices,
        initial="journal",
        help_text="Where this company's export items are booked.",
    )

    class Meta:
        model = Company
        fields = [
            "name",
            "pleo_company_id",
            "active",
            "credential",
            "accounting_adapter",
            "notify_emails",
        ]


# The credential's form: secrets write-only, base URLs checked against the allow-list.


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
        whoever changes the base URL enters the secret again (a secret goes only to the host it was
        entered for)."""
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
