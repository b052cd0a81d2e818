"""Django admin: thin. Forms validate, actions call services; nothing here builds HTTP.

Secrets are write-only: a page shows at most their last 4 characters, and saving a form with a
secret field left blank keeps the stored value.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from exports import crypto
from exports.models import (
    AuditEntry,
    Company,
    Credential,
    ExportJob,
    WebhookDelivery,
    WebhookEndpoint,
    WorkerHeartbeat,
)


def _stored_hint(instance, field: str) -> str:
    if instance is None or instance.pk is None:
        return ""
    if not getattr(instance, f"{field}_ciphertext"):
        return "Nothing stored yet."
    try:
        return f"Stored: {crypto.secret_hint(getattr(instance, field))}. Leave blank to keep it."
    except (crypto.SecretDecryptionError, crypto.EncryptionKeysMissing) as exc:
        return f"Stored, but unreadable: {exc}"


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
        help_text="Blank: the PLEO_API_BASE_URL setting.",
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
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.WRITE_ONLY:
            hint = _stored_hint(self.instance, field)
            if hint:
                self.fields[field].help_text = hint

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        has_key = bool(cleaned.get("api_key")) or bool(self.instance.api_key_ciphertext)
        if kind == Credential.Kind.API_KEY and not has_key:
            self.add_error("api_key", "An API-key credential needs its API key.")
        if kind == Credential.Kind.OAUTH and not cleaned.get("oauth_client_id"):
            self.add_error("oauth_client_id", "An OAuth credential needs its client id.")
        return cleaned

    def save(self, commit=True):
        credential = super().save(commit=False)
        changed_secret = False
        for field in self.WRITE_ONLY:
            value = self.cleaned_data.get(field)
            if value:
                setattr(credential, field, value)
                changed_secret = True
        if changed_secret or self.has_changed():
            # An operator edited it: calls may be made with it again (foundation rule).
            if credential.status == Credential.Status.INVALID:
                credential.status = Credential.Status.OK
                credential.last_error = ""
        if commit:
            credential.save()
        return credential


class WebhookEndpointInline(admin.StackedInline):
    model = WebhookEndpoint
    can_delete = False
    extra = 0
    max_num = 1
    fields = ("webhook_url", "pleo_subscription_id", "subscription_status", "signing_secrets")
    readonly_fields = fields

    @admin.display(description="Webhook URL")
    def webhook_url(self, obj):
        from exports.services.companies import webhook_url

        return webhook_url(obj) if obj and obj.pk else "Saved with the credential."

    @admin.display(description="Signing secrets")
    def signing_secrets(self, obj):
        if not obj or not obj.pk or not obj.signing_secrets_ciphertext:
            return "None yet (subscribe to receive one)."
        try:
            entries = obj.secret_entries()
        except (crypto.SecretDecryptionError, crypto.EncryptionKeysMissing) as exc:
            return f"Unreadable: {exc}"
        return ", ".join(crypto.secret_hint(entry["secret"]) for entry in entries)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    form = CredentialForm
    list_display = ("name", "kind", "status", "company_count", "updated_at")
    list_filter = ("kind", "status")
    search_fields = ("name", "oauth_client_id")
    readonly_fields = ("status", "last_error", "status_changed_at", "token_state")
    inlines = [WebhookEndpointInline]

    def get_fieldsets(self, request, obj=None):
        return [
            (None, {"fields": ["name", "kind", "api_base_url"]}),
            ("API key", {"fields": ["api_key"]}),
            (
                "OAuth 2.0",
                {"fields": ["oauth_client_id", "oauth_client_secret", "token_state"]},
            ),
            ("Status", {"fields": ["status", "last_error", "status_changed_at"]}),
        ]

    @admin.display(description="Companies")
    def company_count(self, obj):
        return obj.companies.count()

    @admin.display(description="OAuth tokens")
    def token_state(self, obj):
        if not obj or not obj.access_token_ciphertext:
            return "Not connected."
        expires = obj.access_token_expires_at
        return (
            f"Connected; access token expires {expires:%Y-%m-%d %H:%M:%S} UTC."
            if expires
            else "Connected."
        )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        from exports.services.companies import ensure_webhook_endpoint

        ensure_webhook_endpoint(obj)


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "pleo_company_id",
        "active",
        "credential",
        "last_check_at",
        "last_check_outcome",
        "job_in_progress",
    )
    list_filter = ("active", "last_check_outcome", "credential")
    search_fields = ("name", "pleo_company_id")
    list_select_related = ("credential",)
    readonly_fields = (
        "last_check_at",
        "last_check_outcome",
        "last_check_error",
        "lease_holder",
        "lease_expires_at",
        "recheck_requested",
        "created_at",
        "updated_at",
    )
    fields = (
        "name",
        "pleo_company_id",
        "active",
        "credential",
        "accounting_adapter",
    ) + readonly_fields

    @admin.display(description="Job in progress")
    def job_in_progress(self, obj):
        job = (
            obj.export_jobs.filter(status=ExportJob.Status.IN_PROGRESS)
            .order_by("created_at")
            .first()
        )
        if job is None:
            return "-"
        url = reverse("admin:exports_exportjob_change", args=[job.pk])
        return format_html('<a href="{}">{}</a>', url, str(job.pleo_job_id)[:8])


class AuditInline(admin.TabularInline):
    model = AuditEntry
    fk_name = "export_job"
    extra = 0
    can_delete = False
    ordering = ("-created_at", "-id")
    fields = (
        "created_at",
        "trigger",
        "step",
        "outcome",
        "http_call",
        "message",
        "worker",
        "run_id",
    )
    readonly_fields = fields

    @admin.display(description="HTTP")
    def http_call(self, obj):
        if not obj.http_method:
            return ""
        return f"{obj.http_method} {obj.http_path} → {obj.http_status or '—'}"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = (
        "pleo_job_id",
        "company",
        "status",
        "claim",
        "created_at",
        "started_at",
        "number_of_items",
        "expiry_note",
    )
    list_filter = ("status", "claim", "company")
    search_fields = ("pleo_job_id",)
    list_select_related = ("company",)
    date_hierarchy = "created_at"
    inlines = [AuditInline]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields] + ["expiry_note"]

    @admin.display(description="Expiry")
    def expiry_note(self, obj):
        if obj.expired_detected_at:
            return "Expired before it could be started: resubmit the export from Pleo's web app."
        return ""

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # Read-only: viewing is allowed; saving changes nothing.
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "company_link",
        "job_link",
        "trigger",
        "step",
        "outcome",
        "http_call",
        "message",
        "worker",
    )
    list_filter = ("outcome", "step", "trigger", "company")
    date_hierarchy = "created_at"
    search_fields = ("message", "export_job__pleo_job_id")
    list_select_related = ("company", "export_job")
    ordering = ("-created_at", "-id")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.display(description="Company")
    def company_link(self, obj):
        if obj.company_id is None:
            return "-"
        url = reverse("admin:exports_company_change", args=[obj.company_id])
        return format_html('<a href="{}">{}</a>', url, obj.company.name)

    @admin.display(description="Job")
    def job_link(self, obj):
        if obj.export_job_id is None:
            return "-"
        url = reverse("admin:exports_exportjob_change", args=[obj.export_job_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.export_job.pleo_job_id)[:8])

    @admin.display(description="HTTP")
    def http_call(self, obj):
        if not obj.http_method:
            return ""
        return f"{obj.http_method} {obj.http_path} → {obj.http_status or '—'}"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("received_at", "endpoint", "event_type", "webhook_id", "company", "state")
    list_filter = ("state", "event_type", "company")
    search_fields = ("webhook_id",)
    date_hierarchy = "received_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("name", "started_at", "last_seen_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
