"""Django admin: thin. Forms validate, actions call services; nothing here builds HTTP.

Secrets are write-only: a page shows at most their last 4 characters, whoever looks
(``exports.admin_secrets``), and saving a form with a secret field left blank keeps the stored
value. Every admin shows a company-scoped user only their companies' rows
(``exports.admin_scoping``).
"""

from __future__ import annotations

import io
import re

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from exports import admin_live, clock, crypto, validators
from exports.adapters import adapter_choices
from exports.adapters.journal import format_minor, write_journal_csv
from exports.admin_deliveries import CredentialRejectionsMixin, DeliveryAdminMixin
from exports.admin_job_page import NONE_YET_TABULAR, ExportJobPageMixin, RunLinkMixin
from exports.admin_scoping import CompanyScopedAdminMixin
from exports.admin_secrets import SecretHintsAdminMixin, secret_display
from exports.admin_time import timestamp_text
from exports.models import (
    AuditEntry,
    Company,
    Credential,
    ExportItemRecord,
    ExportJob,
    JournalEntry,
    JournalLine,
    Trigger,
    WebhookDelivery,
    WebhookEndpoint,
    WorkerHeartbeat,
)
from exports.selectors.company_access import sees_all_companies
from exports.selectors.live_status import check_now_follow_link
from exports.services.dispatch import EnqueueFailed, enqueue_company_check

# The audit table and the journal are wide: their pages get the whole width (the index and the
# breadcrumbs still lead everywhere the sidebar did).
admin.site.enable_nav_sidebar = False


def _enqueue_checks(modeladmin, request, companies, *, recover: bool) -> None:
    """Only enqueue: no Pleo call happens in the admin request."""
    queued = already = inactive = 0
    try:
        for company in companies:
            if not company.active:
                inactive += 1
            elif enqueue_company_check(
                company_id=company.pk, trigger=Trigger.MANUAL, recover=recover
            ):
                queued += 1
            else:
                already += 1
    except EnqueueFailed as exc:
        modeladmin.message_user(
            request, f"The worker queue refused the check: {exc}", messages.ERROR
        )
        return
    parts = [f"{queued} {'company' if queued == 1 else 'companies'} queued for a check"]
    if recover:
        parts[0] += " (recovery mode)"
    if already:
        parts.append(f"{already} already queued")
    if inactive:
        parts.append(f"{inactive} inactive, skipped")
    text = "; ".join(parts) + "."
    if len(companies) == 1 and queued + already:
        text = format_html("{} {}.", text, check_now_follow_link(companies[0]))
    modeladmin.message_user(request, text, messages.SUCCESS)


_UUID_IN_PATH = re.compile(r"([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def http_call_summary(entry) -> str:
    """``PUT /v3/export-jobs/1a2b3c4d…/items → 200``: ids shortened so the table stays readable."""
    if not entry.http_method:
        return ""
    path = _UUID_IN_PATH.sub(r"\1…", entry.http_path)
    return f"{entry.http_method} {path} → {entry.http_status or '—'}"


class ViewOnlyMixin:
    """Rows are shown, never added or edited here (they come from Pleo or from our runs)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReadOnlyMixin(ViewOnlyMixin):
    """Shown, never added, edited or deleted (audit trail, mirrors of Pleo, the journal)."""

    def has_delete_permission(self, request, obj=None):
        return False


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
        help_text="Blank: the PLEO_API_BASE_URL setting. Only a Pleo host of PLEO_ALLOWED_HOSTS, "
        "over https; changing it needs the secret entered again.",
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

    def clean_api_base_url(self):
        value = self.cleaned_data.get("api_base_url") or ""
        validators.validate_pleo_base_url(value)
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


class WebhookEndpointInline(SecretHintsAdminMixin, CompanyScopedAdminMixin, admin.StackedInline):
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

    @secret_display("Signing secrets")
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
class CredentialAdmin(
    CredentialRejectionsMixin, SecretHintsAdminMixin, CompanyScopedAdminMixin, admin.ModelAdmin
):
    form = CredentialForm
    list_display = ("name", "kind", "status", "company_count", "updated_at")
    list_filter = ("kind", "status")
    search_fields = ("name", "oauth_client_id")
    readonly_fields = (
        "status",
        "last_error",
        "status_changed_at",
        "token_state",
        "request_budget",
        "rejected_requests",
    )
    inlines = [WebhookEndpointInline]
    actions = ["subscribe_webhooks", "unsubscribe_webhooks", "rotate_webhook_secret"]
    change_form_template = "admin/exports/credential/change_form.html"

    def get_urls(self):
        from exports import oauth_views

        return [
            path(
                "<int:credential_id>/oauth/connect/",
                self.admin_site.admin_view(oauth_views.connect),
                name="exports_credential_oauth_connect",
            ),
        ] + super().get_urls()

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        """The "Connect to Pleo" / "Reconnect to Pleo" button of an OAuth credential."""
        if obj is not None and obj.pk and obj.kind == Credential.Kind.OAUTH:
            context["oauth_connect"] = {
                "url": reverse("admin:exports_credential_oauth_connect", args=[obj.pk]),
                "reconnect": obj.status == Credential.Status.NEEDS_REAUTHORISATION
                or bool(obj.refresh_token_ciphertext),
                "needs_reauthorisation": obj.status == Credential.Status.NEEDS_REAUTHORISATION,
                "allowed": request.user.has_perm("exports.change_credential"),
            }
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

    def _webhook_action(self, request, queryset, operation, verb):
        from exports.services import subscriptions

        for credential in queryset:
            try:
                message = getattr(subscriptions, operation)(credential)
            except Exception as exc:  # each credential reports its own failure
                self.message_user(
                    request, f"{credential.name}: {verb} failed: {exc}", messages.ERROR
                )
            else:
                self.message_user(request, f"{credential.name}: {message}", messages.SUCCESS)

    @admin.action(description="Subscribe webhooks (calls Pleo)", permissions=["manage_webhooks"])
    def subscribe_webhooks(self, request, queryset):
        self._webhook_action(request, queryset, "webhooks_subscribe", "subscribing")

    @admin.action(description="Unsubscribe webhooks (calls Pleo)", permissions=["manage_webhooks"])
    def unsubscribe_webhooks(self, request, queryset):
        self._webhook_action(request, queryset, "webhooks_unsubscribe", "unsubscribing")

    @admin.action(description="Rotate webhook secret (calls Pleo)", permissions=["manage_webhooks"])
    def rotate_webhook_secret(self, request, queryset):
        self._webhook_action(request, queryset, "webhooks_rotate_secret", "rotating")

    def has_manage_webhooks_permission(self, request):
        return request.user.has_perm("exports.manage_webhooks")

    def get_fieldsets(self, request, obj=None):
        return [
            (None, {"fields": ["name", "kind", "api_base_url"]}),
            ("API key", {"fields": ["api_key"]}),
            (
                "OAuth 2.0",
                {"fields": ["oauth_client_id", "oauth_client_secret", "token_state"]},
            ),
            (
                "Status",
                {
                    "fields": [
                        "status",
                        "last_error",
                        "status_changed_at",
                        "request_budget",
                        "rejected_requests",
                    ]
                },
            ),
        ]

    @admin.display(description="Companies")
    def company_count(self, obj):
        return obj.companies.count()

    @admin.display(description="Request budget")
    def request_budget(self, obj):
        """Pleo requests this credential's budget key has spent this minute (issue 11)."""
        from exports.services import budget

        if not obj or not obj.pk:
            return "-"
        return budget.describe(budget.usage_for_credential(obj))

    @admin.display(description="OAuth tokens")
    def token_state(self, obj):
        from exports.services.oauth import redirect_uri

        hint = f"Redirect URI to register with Pleo: {redirect_uri()}"
        if not obj or not obj.access_token_ciphertext:
            return f"Not connected. {hint}"
        expires = obj.access_token_expires_at
        text = (
            f"Connected; access token expires {timestamp_text(expires)}."
            if expires
            else "Connected."
        )
        if obj.status == Credential.Status.NEEDS_REAUTHORISATION:
            text = "Needs re-authorisation: use Reconnect to Pleo."
        if obj.refreshing_until:
            text += f" A token refresh is in flight (until {timestamp_text(obj.refreshing_until)})."
        return f"{text} {hint}"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        from exports.services.companies import ensure_webhook_endpoint

        ensure_webhook_endpoint(obj)


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


@admin.register(Company)
class CompanyAdmin(CompanyScopedAdminMixin, admin.ModelAdmin):
    form = CompanyForm
    list_display = (
        "name",
        "pleo_company_id",
        "active",
        "credential",
        "last_check_at",
        "last_check_outcome",
        "job_in_progress",
        "credential_warning",
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
        "deliveries_received",
    )
    fields = (
        "name",
        "pleo_company_id",
        "active",
        "credential",
        "accounting_adapter",
        "notify_emails",
    ) + readonly_fields
    actions = ["check_now", "check_now_recover", "release_unknown_status"]
    DELIVERIES_SHOWN = 20

    @admin.display(description="Webhook deliveries received")
    def deliveries_received(self, obj):
        """The newest deliveries for this company (read-only; reprocess from their own list)."""
        if obj is None or obj.pk is None:
            return "-"
        deliveries = list(obj.deliveries.order_by("-received_at", "-id")[: self.DELIVERIES_SHOWN])
        if not deliveries:
            return "None yet."
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:exports_webhookdelivery_change", args=[d.pk]),
                    timestamp_text(d.received_at),
                    d.event_type,
                    d.webhook_id,
                    d.pleo_job_id or "",
                    d.get_state_display(),
                )
                for d in deliveries
            ),
        )
        list_url = (
            reverse("admin:exports_webhookdelivery_changelist") + f"?company__id__exact={obj.pk}"
        )
        return format_html(
            "<table><tr><th>Received</th><th>Event</th><th>Webhook id</th><th>Job</th>"
            '<th>State</th></tr>{}</table><p><a href="{}">All deliveries of this company'
            "</a> (reprocess failed ones there)</p>",
            rows,
            list_url,
        )

    change_form_template = "admin/exports/company/change_form.html"

    @admin.action(description="Check now", permissions=["check_now"])
    def check_now(self, request, queryset):
        _enqueue_checks(self, request, queryset, recover=False)

    @admin.action(description="Check now (recover)", permissions=["check_now"])
    def check_now_recover(self, request, queryset):
        _enqueue_checks(self, request, queryset, recover=True)

    def has_check_now_permission(self, request):
        return request.user.has_perm("exports.check_now")

    @admin.action(
        description="Release company (unknown job status)", permissions=["release_unknown_status"]
    )
    def release_unknown_status(self, request, queryset):
        from exports.services.unknown_status import company_release_unknown_status

        released = []
        for company in queryset:
            user_name = request.user.get_username()
            if company_release_unknown_status(company=company, user_name=user_name):
                released.append(company)
            else:
                self.message_user(
                    request,
                    f"{company} is not held by a job in an unknown status; skipped.",
                    messages.WARNING,
                )
        if released:
            _enqueue_checks(self, request, released, recover=False)

    def has_release_unknown_status_permission(self, request):
        return request.user.has_perm("exports.release_unknown_status")

    def get_urls(self):
        return [
            path(
                "live-status/",
                self.admin_site.admin_view(admin_live.live_status_view),
                name="exports_live_status",
            ),
            path(
                "<int:company_id>/check-now/",
                self.admin_site.admin_view(self.check_now_view),
                name="exports_company_check_now",
            ),
        ] + super().get_urls()

    def check_now_view(self, request, company_id):
        if request.method != "POST" or not self.has_check_now_permission(request):
            self.message_user(request, "You may not trigger checks.", messages.ERROR)
        else:
            company = get_object_or_404(self.get_queryset(request), pk=company_id)
            _enqueue_checks(self, request, [company], recover=request.POST.get("recover") == "1")
        return redirect("admin:exports_company_change", company_id)

    def get_readonly_fields(self, request, obj=None):
        """A company-scoped user does not move a company to another credential."""
        fields = super().get_readonly_fields(request, obj)
        if sees_all_companies(user=request.user):
            return fields
        return ("credential", *fields)

    def render_change_form(self, request, context, *args, **kwargs):
        context["can_check_now"] = self.has_check_now_permission(request)
        return super().render_change_form(request, context, *args, **kwargs)

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

    @admin.display(description="Credential warning")
    def credential_warning(self, obj):
        credential = obj.credential
        if credential.status == Credential.Status.NEEDS_REAUTHORISATION:
            url = reverse("admin:exports_credential_change", args=[credential.pk])
            return format_html(
                '<a href="{}" style="color:#ba2121;font-weight:bold">'
                "⚠ Needs re-authorisation: reconnect to Pleo</a>",
                url,
            )
        if credential.status == Credential.Status.INVALID:
            url = reverse("admin:exports_credential_change", args=[credential.pk])
            return format_html('<a href="{}" style="color:#ba2121">⚠ Credential invalid</a>', url)
        return ""


class AuditInline(RunLinkMixin, CompanyScopedAdminMixin, ViewOnlyMixin, admin.TabularInline):
    model = AuditEntry
    fk_name = "export_job"
    template = NONE_YET_TABULAR
    extra = 0
    can_delete = False
    ordering = ("-created_at", "-id")
    fields = (
        "created_at",
        "step",
        "outcome",
        "message",
        "trigger",
        "http_call",
        "worker",
        "run_link",
    )
    readonly_fields = fields

    @admin.display(description="HTTP")
    def http_call(self, obj):
        return http_call_summary(obj)


class ExportItemRecordInline(CompanyScopedAdminMixin, ViewOnlyMixin, admin.TabularInline):
    """The job's items as we processed them, with their outcome and ledger entry."""

    model = ExportItemRecord
    fk_name = "export_job"
    template = NONE_YET_TABULAR
    extra = 0
    can_delete = False
    verbose_name = "item"
    verbose_name_plural = "items (as this bridge processed them)"
    fields = (
        "accounting_entry_id",
        "state",
        "result",
        "ledger_entry",
        "exported_at",
        "failure_reason_type",
        "failure_reason",
        "reported_at",
    )
    readonly_fields = fields

    @admin.display(description="Ledger entry")
    def ledger_entry(self, obj):
        pk = JournalEntry.pk_from_number(obj.external_id) if obj.adapter == "journal" else None
        if pk is not None and JournalEntry.objects.filter(pk=pk).exists():
            url = reverse("admin:exports_journalentry_change", args=[pk])
            return format_html('<a href="{}">{}</a>', url, obj.external_id)
        if obj.external_url.startswith(("https://", "http://")):
            return format_html('<a href="{}">{}</a>', obj.external_url, obj.external_id or "link")
        return obj.external_id or "-"


@admin.register(ExportJob)
class ExportJobAdmin(ExportJobPageMixin, CompanyScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    # The page's groups and displays: exports.admin_job_page.
    list_display = (
        "pleo_job_id",
        "company",
        "status",
        "claim",
        "created_at",
        "claimed_by_us_at",
        "number_of_items",
        "expiry_note",
    )
    list_filter = ("status", "claim", "company")
    search_fields = ("pleo_job_id",)
    list_select_related = ("company",)
    date_hierarchy = "created_at"
    inlines = [ExportItemRecordInline, AuditInline]
    actions = ["adopt_job"]

    @admin.action(description="Adopt job (take ownership)", permissions=["adopt"])
    def adopt_job(self, request, queryset):
        from exports.services.start_flow import job_adopt

        adopted = 0
        for job in queryset:
            if job.status != ExportJob.Status.IN_PROGRESS or job.is_ours:
                self.message_user(
                    request,
                    f"Job {job.pleo_job_id} is not an in-progress job owned elsewhere; skipped.",
                    messages.WARNING,
                )
                continue
            job_adopt(job=job, user_name=request.user.get_username())
            enqueue_company_check(company_id=job.company_id, trigger=Trigger.MANUAL, recover=True)
            adopted += 1
        if adopted:
            self.message_user(
                request, f"{adopted} job(s) adopted; a recovery check was queued.", messages.SUCCESS
            )

    def has_adopt_permission(self, request):
        return request.user.has_perm("exports.adopt_exportjob")

    @admin.display(description="Started by us", ordering="claimed_at")
    def claimed_by_us_at(self, obj):
        return obj.claimed_at

    @admin.display(description="Expiry")
    def expiry_note(self, obj):
        if obj.expired_detected_at:
            return "Expired before it could be started: resubmit the export from Pleo's web app."
        return ""


@admin.register(AuditEntry)
class AuditEntryAdmin(CompanyScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    # What happened first (step, outcome, message); how (trigger, call, worker) after it.
    list_display = (
        "created_at",
        "company_link",
        "job_link",
        "step",
        "outcome",
        "message",
        "trigger",
        "http_call",
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
        return http_call_summary(obj)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(
    DeliveryAdminMixin, CompanyScopedAdminMixin, ViewOnlyMixin, admin.ModelAdmin
):
    # Reprocess, the job link and the read-only fields: exports.admin_deliveries.
    list_display = ("received_at", "endpoint", "event_type", "webhook_id", "company", "state")
    list_filter = ("state", "event_type", "company")
    search_fields = ("webhook_id",)
    date_hierarchy = "received_at"
    actions = ["reprocess"]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(CompanyScopedAdminMixin, ViewOnlyMixin, admin.ModelAdmin):
    list_display = ("name", "started_at", "last_seen_at")


class JournalLineInline(CompanyScopedAdminMixin, ViewOnlyMixin, admin.TabularInline):
    model = JournalLine
    extra = 0
    can_delete = False
    fields = ("position", "kind", "account_code", "account_name", "debit_amount", "credit_amount")
    readonly_fields = fields

    @admin.display(description="Debit")
    def debit_amount(self, obj):
        return format_minor(obj.debit, obj.entry.currency) if obj.debit else ""

    @admin.display(description="Credit")
    def credit_amount(self, obj):
        return format_minor(obj.credit, obj.entry.currency) if obj.credit else ""


@admin.register(JournalEntry)
class JournalEntryAdmin(CompanyScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    """The local journal, read-only; "Download CSV" exports the filtered list (one row a line)."""

    list_display = (
        "number",
        "date",
        "company",
        "job_link",
        "accounting_entry_id",
        "total",
        "currency",
        "description",
    )
    list_filter = ("company", ("export_job", admin.RelatedOnlyFieldListFilter), "currency")
    search_fields = ("accounting_entry_id", "reconciliation_id", "description")
    list_select_related = ("company", "export_job")
    date_hierarchy = "date"
    inlines = [JournalLineInline]
    change_list_template = "admin/exports/journalentry/change_list.html"
    fields = (
        "number",
        "company",
        "export_job",
        "accounting_entry_id",
        "date",
        "total",
        "currency",
        "supplier_total",
        "description",
        "pleo_type",
        "reconciliation_id",
        "vendor_code",
        "vendor_name",
        "pleo_links",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="Number", ordering="pk")
    def number(self, obj):
        return obj.number

    @admin.display(description="Job")
    def job_link(self, obj):
        if obj.export_job_id is None:
            return "-"
        url = reverse("admin:exports_exportjob_change", args=[obj.export_job_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.export_job.pleo_job_id)[:8])

    @admin.display(description="Amount", ordering="amount")
    def total(self, obj):
        return format_minor(obj.amount, obj.currency)

    @admin.display(description="Amount in the supplier's currency")
    def supplier_total(self, obj):
        if obj.supplier_amount is None or not obj.supplier_currency:
            return "-"
        return f"{format_minor(obj.supplier_amount, obj.supplier_currency)} {obj.supplier_currency}"

    def get_urls(self):
        return [
            path(
                "csv/",
                self.admin_site.admin_view(self.csv_view),
                name="exports_journalentry_csv",
            ),
        ] + super().get_urls()

    def csv_view(self, request):
        """The changelist's entries (its filters and search apply) as CSV."""
        if not self.has_view_permission(request):
            self.message_user(request, "You may not view the journal.", messages.ERROR)
            return redirect("admin:index")
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponse("Unknown filter.", status=400, content_type="text/plain")
        entries = (
            changelist.get_queryset(request)
            .select_related("company", "export_job")
            .prefetch_related("lines")
            .order_by("pk")
        )
        out = io.StringIO()
        write_journal_csv(entries, out)
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        name = f"journal-{clock.now():%Y%m%d-%H%M%S}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


# The notification log (exports.notifications), registered in its own module.
from exports.notifications import admin as _notifications_admin  # noqa: E402,F401
