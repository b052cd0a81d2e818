"""The credential's admin page: thin, the work is in services.

* The form (``exports.admin.forms.CredentialForm``): secrets write-only (blank keeps the stored
  value), the API and OAuth base URL overrides checked against the Pleo host allow-list, and
  changing either URL needs the secret that would go there entered again. The help text shows
  the URL in use.
* Saving a new or changed key tests it against Pleo (one list call,
  ``exports.services.credentials.credential_test_connection``) and says clearly when Pleo refuses
  it (the credential is still saved, and marked invalid).
* The change page: the status as a banner at the top, and "Test connection" and "Subscribe
  webhooks" buttons (POST, CSRF-checked by the admin, permission-checked, company-scoped).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST

from exports import crypto
from exports.admin.deliveries import CredentialRejectionsMixin
from exports.admin.forms import CredentialForm
from exports.admin.mixins import admin_views
from exports.admin.scoping import CompanyScopedAdminMixin
from exports.admin.secrets import SecretHintsAdminMixin, secret_display
from exports.models import Credential, WebhookEndpoint
from exports.selectors.company_access import credential_list_for_user
from exports.timestamps import timestamp_text

TEST_PERMISSION = "exports.change_credential"
WEBHOOKS_PERMISSION = "exports.manage_webhooks"


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
        own = admin_views(
            self,
            (
                "<int:credential_id>/test-connection/",
                self.test_connection_view,
                "exports_credential_test_connection",
            ),
            (
                "<int:credential_id>/subscribe-webhooks/",
                self.subscribe_webhooks_view,
                "exports_credential_subscribe_webhooks",
            ),
        )
        return own + super().get_urls()

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
        credential = get_object_or_404(
            credential_list_for_user(user=request.user), pk=credential_id
        )
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


class WebhookEndpointInline(SecretHintsAdminMixin, CompanyScopedAdminMixin, admin.StackedInline):
    model = WebhookEndpoint
    can_delete = False
    extra = 0
    max_num = 1
    fields = ("webhook_url", "pleo_subscription_id", "subscription_status", "signing_secrets")
    readonly_fields = fields

    @admin.display(description="Webhook URL")
    def webhook_url(self, obj):
        from exports.services.companies import webhook_endpoint_url

        return (
            webhook_endpoint_url(endpoint=obj) if obj and obj.pk else "Saved with the credential."
        )

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

        own = admin_views(
            self,
            (
                "<int:credential_id>/oauth/connect/",
                oauth_views.connect,
                "exports_credential_oauth_connect",
            ),
        )
        return own + super().get_urls()

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
                message = getattr(subscriptions, operation)(credential=credential)
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
        self._webhook_action(request, queryset, "webhook_secret_rotate", "rotating")

    def has_manage_webhooks_permission(self, request):
        return request.user.has_perm("exports.manage_webhooks")

    @admin.display(description="Companies")
    def company_count(self, obj):
        return obj.companies.count()

    @admin.display(description="Request budget")
    def request_budget(self, obj):
        """Pleo requests this credential's budget key has spent this minute (shared budget)."""
        from exports.services import budget

        if not obj or not obj.pk:
            return "-"
        return budget.budget_usage_describe(
            usage=budget.budget_usage_for_credential(credential=obj)
        )

    @admin.display(description="OAuth tokens")
    def token_state(self, obj):
        from exports.services.oauth import oauth_redirect_uri

        hint = f"Redirect URI to register with Pleo: {oauth_redirect_uri()}"
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
        from exports.services.companies import webhook_endpoint_ensure

        webhook_endpoint_ensure(credential=obj)
