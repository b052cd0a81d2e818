"""Pleo credentials (secrets encrypted at rest, ``exports.crypto``) and their webhook endpoints."""

from __future__ import annotations

import json
import uuid

from django.db import models

from exports import crypto
from exports.choices import CredentialKind, CredentialStatus


class EncryptedSecret:
    """A model attribute whose value is stored encrypted in ``<name>_ciphertext``.

    Reading decrypts (a wrong key raises); assigning encrypts. List pages, ``__str__`` and
    ``repr`` never touch it, so a page that shows no secret needs no key.
    """

    def __init__(self, verbose_name: str = ""):
        self.verbose_name = verbose_name

    def __set_name__(self, owner, name):
        self.name = name
        self.column = f"{name}_ciphertext"
        self.verbose_name = self.verbose_name or name.replace("_", " ").capitalize()

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        return crypto.decrypt(getattr(instance, self.column))

    def __set__(self, instance, value):
        if self.column not in {f.attname for f in instance._meta.concrete_fields}:
            raise AttributeError(f"{type(instance).__name__} has no column {self.column}")
        setattr(instance, self.column, crypto.encrypt(value or ""))


def secret_column():
    return models.TextField(blank=True, default="", editable=False)


class OAuthTokenColumns(models.Model):
    """The columns :mod:`exports.services.token_refresh` reads and writes on a token owner
    (``Credential``, ``XeroConnection``): both tokens encrypted, the access token's expiry and the
    refresh marker. The owner adds the ``access_token`` / ``refresh_token`` ``EncryptedSecret``s."""

    access_token_ciphertext = secret_column()
    access_token_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_token_ciphertext = secret_column()
    refreshing_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        abstract = True


class Credential(OAuthTokenColumns):
    """A Pleo credential: an API key or an OAuth 2.0 client, for one company or an organisation."""

    Kind = CredentialKind
    Status = CredentialStatus

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.API_KEY)
    api_key_ciphertext = secret_column()
    oauth_client_id = models.CharField("OAuth client id", max_length=200, blank=True)
    oauth_client_secret_ciphertext = secret_column()
    api_base_url = models.URLField(
        "API base URL override",
        blank=True,
        help_text="Blank: the PLEO_API_BASE_URL setting.",
    )
    oauth_base_url = models.URLField(
        "OAuth base URL override",
        blank=True,
        help_text="Blank: the PLEO_OAUTH_BASE_URL setting.",
    )
    status = models.CharField(max_length=30, choices=Status.choices, default=Status.OK)
    last_error = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    # The last "Test connection" (or the check made on save): when, and what Pleo answered.
    connection_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    connection_check_result = models.CharField(max_length=500, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    api_key = EncryptedSecret("API key")
    oauth_client_secret = EncryptedSecret("OAuth client secret")
    access_token = EncryptedSecret("OAuth access token")
    refresh_token = EncryptedSecret("OAuth refresh token")

    SECRET_FIELDS = ("api_key", "oauth_client_secret", "access_token", "refresh_token")

    class Meta:
        ordering = ["name"]
        permissions = [("manage_webhooks", "Can subscribe and unsubscribe webhooks (calls Pleo)")]

    def __str__(self):
        return f"{self.name} ({self.get_kind_display()})"

    def __repr__(self):
        return f"<Credential {self.pk} {self.name!r} {self.kind} {self.status}>"

    @property
    def is_usable(self) -> bool:
        return self.status == self.Status.OK


class WebhookEndpoint(models.Model):
    """Where Pleo delivers a credential's webhooks: ``/webhooks/pleo/<uuid>/``.

    Signing secrets are a list (two may be active during a rotation), encrypted as one JSON value:
    ``[{"secret": "whsec_…", "added_at": iso, "retire_after": iso|None, "subscription_id": str}]``.
    """

    credential = models.OneToOneField(
        Credential, on_delete=models.CASCADE, related_name="webhook_endpoint"
    )
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    signing_secrets_ciphertext = secret_column()
    pleo_subscription_id = models.CharField(max_length=100, blank=True)
    subscription_status = models.CharField(max_length=30, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    signing_secrets = EncryptedSecret("Signing secrets")  # JSON text, see the class docstring

    def __str__(self):
        return f"Webhook endpoint {self.uuid}"

    @property
    def path(self) -> str:
        return f"/webhooks/pleo/{self.uuid}/"

    def secret_entries(self) -> list[dict]:
        raw = self.signing_secrets
        return json.loads(raw) if raw else []

    def set_secret_entries(self, entries: list[dict]) -> None:
        self.signing_secrets = json.dumps(entries) if entries else ""
