"""Django admin: thin. Forms validate, actions call services; nothing here builds HTTP.

Secrets are write-only: a page shows at most their last 4 characters, whoever looks
(``exports.admin_secrets``), and saving a form with a secret field left blank keeps the stored
value. Every admin shows a company-scoped user only their companies' rows
(``exports.admin_scoping``).
"""

from __future__ import annotations

import re

from django import forms
from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from exports import admin_live, crypto
from exports.adapters import adapter_choices
from exports.admin_company_form import CompanyFormMixin
from exports.admin_credentials import CredentialForm, CredentialPageMixin
from exports.admin_deliveries import CredentialRejectionsMixin, DeliveryAdminMixin
from exports.admin_failing import CompanyFailingAdminMixin, JobFailingAdminMixin
from exports.admin_filters import AgeListFilter, ExpiryRiskListFilter, LastCheckOutcomeFilter
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
    CredentialRejectionsMixin,
    SecretHintsAdminMixin,
    CompanyScopedAdminMixin,
    CredentialPageMixin,
    admin.ModelAdmin,
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
        "connection_test",
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
class CompanyAdmin(
    CompanyFailingAdminMixin, CompanyScopedAdminMixin, CompanyFormMixin, admin.ModelAdmin
):
    form = CompanyForm
    list_display = (
        "name",
        "pleo_company_id",
        "active",
        "credential",
        "last_check_at",
        "last_check_result",
        "job_in_progress",
        "credential_warning",
    )
    list_filter = ("active", LastCheckOutcomeFilter, "credential")
    search_fields = ("name", "pleo_company_id")
    list_select_related = ("credential",)
    readonly_fields = (
        "last_check_at",
        "last_check_result",
        "last_check_error",
        "failing_state",
        "lease_holder",
        "lease_expires_at",
        "recheck_requested",
        "created_at",
        "updated_at",
        "deliveries_received",
        "recent_jobs",
        "recent_audit",
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
class ExportJobAdmin(
    JobFailingAdminMixin,
    ExportJobPageMixin,
    CompanyScopedAdminMixin,
    ReadOnlyMixin,
    admin.ModelAdmin,
):
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
    list_filter = ("status", ExpiryRiskListFilter, "claim", "company")
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
    list_filter = ("outcome", AgeListFilter, "step", "trigger", "company")
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


# The journal (exports.admin_journal) and the notification log (exports.notifications), registered
# in their own modules.
from exports import admin_journal as _journal_admin  # noqa: E402,F401
from exports.notifications import admin as _notifications_admin  # noqa: E402,F401
