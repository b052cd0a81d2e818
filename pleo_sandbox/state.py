"""The sandbox's in-memory Pleo: companies, credentials, export jobs, items, subscriptions.

:class:`SandboxState` is both the domain (the ``api_*`` methods the HTTP layer calls with an
authenticated :class:`Credential`) and the Python control API used by tests (every public method
without the ``api_`` prefix). All state sits behind one re-entrant lock; expiry is applied lazily
at the start of every operation and whenever the clock moves.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pleo_sandbox import variants
from pleo_sandbox.clock import SandboxClock, iso, parse_iso
from pleo_sandbox.data import ITEM_KINDS, CompanyProfile, generate_export_item, new_uuid
from pleo_sandbox.errors import ApiError
from pleo_sandbox.faults import Fault, FaultRegistry
from pleo_sandbox.oauth import OAuthClient, OAuthServer
from pleo_sandbox.pagination import paginate
from pleo_sandbox.ratelimit import MSG_RATE_LIMITED, RATE_LIMIT_SCOPES, RateLimiter
from pleo_sandbox.ratelimit import key_for as rate_limit_key
from pleo_sandbox.requestlog import RequestLog
from pleo_sandbox.signing import new_message_id, new_secret
from pleo_sandbox.webhooks import Delivery, WebhookDispatcher

JOB_STATUSES = ("pending", "in_progress", "failed", "completed", "completed_with_errors")
UNFINISHED_JOB_STATUSES = ("pending", "in_progress")
JOB_EVENTS = ("started", "failed", "completed", "completed_with_errors")
JOB_FAILURE_REASON_TYPES = (
    "invalid_configuration",
    "missing_configuration",
    "authentication_failure",
    "accounting_system_authentication_failure",
    "pleo_rate_limit",
    "accounting_system_rate_limit",
    "service_unreachable",
    "accounting_system_unreachable",
    "validation_failure",
    "authorization_failure",
    "integration_unusable",
    "job_expired",
    "service_timeout",
    "accounting_system_timeout",
    "canceled_by_user",
)
ITEM_STATUSES = ("pending", "in_progress", "failed", "successful", "abandoned")
UNFINISHED_ITEM_STATUSES = ("pending", "in_progress")
ITEM_FAILURE_REASON_TYPES = (
    "receipt_upload_failure",
    "receipt_download_failure",
    "receipt_file_size_limit_exceeded",
    "receipt_conversion_failure",
    "unexpected_failure",
    "invalid_configuration",
    "missing_configuration",
    "accounting_system_authentication_failure",
    "accounting_system_rate_limit",
    "accounting_system_unreachable",
    "validation_failure",
    "accounting_system_validation_failure",
    "authorization_failure",
    "accounting_system_timeout",
    "vendor_unknown",
    "account_unknown",
    "tax_code_unknown",
    "tag_unknown",
)
# Section 4.7 of the reference: every (status, event) pair not listed answers 422.
TRANSITIONS = {
    ("pending", "started"): "in_progress",
    ("in_progress", "failed"): "failed",
    ("in_progress", "completed"): "completed",
    ("in_progress", "completed_with_errors"): "completed_with_errors",
}
FINAL_EVENTS = ("failed", "completed", "completed_with_errors")
MAX_ITEMS_PER_UPDATE = 100
SCOPES = ("export-jobs:read", "export-jobs:write", "export-items:read")
EVENT_TYPES = variants.subscribable_event_types()
JOB_CREATED_EVENT = variants.JOB_CREATED_SPELLINGS[0]
SUBSCRIPTION_STATUSES = ("ACTIVE", "INACTIVE")
ENDPOINT_AUTH_TYPES = ("NONE", "BASIC")
WALLET_CURRENCIES = ("DKK", "EUR", "GBP", "SEK")

OTHER_INTEGRATION = "other-integration"
EXPIRY_SWEEPER = "pleo-expiry-sweeper"
CONTROL_IDENTITY = "sandbox-control"

MSG_JOB_NOT_FOUND = "Export job not found."
MSG_INVALID_CHANGE = "Export Job status change failed"
MSG_ITEMS_LIMIT = "Number of items to update is more than 100."
MSG_JOB_FINISHED_ITEMS = "Export job is finished."
MSG_JOB_FINISHED_EXPORT_ITEMS = "Export Job is finished and can no longer be processed."
MSG_JOB_NOT_STARTED = "Export job is not started."
MSG_ALREADY_IN_PROGRESS = "Export Job already in progress for this company."
MSG_MISSING_CONTRA = (
    "Contra accounts are not fully configured. Please map contra accounts in the Accounting "
    "settings."
)
MSG_EXPIRED = "Job not updated within expiry time limit."
MSG_ENTRY_MISSING = "Accounting entry does not exist."

DEFAULT_SWITCHES: dict[str, Any] = {
    "list_order": "chronological",  # chronological | reverse | shuffled (stable per seed)
    "page_size_default": 20,
    "page_size_max": 100,
    "expiry_lag_seconds": 0.0,
    "default_expires_in": 3600,
    "started_on_in_progress": "422",  # "422" | "202" (idempotent, no change)
    "failed_on_pending": "422",  # "422" | "202" (pending → failed allowed)
    "item_updates_on_pending": "422",  # "accept" | "422"
    "conflict_on_create": True,  # 409 EXPORT_ALREADY_IN_PROGRESS on POST /v3/export-jobs
    "stall_seconds": 3.0,
    "webhook_retry_schedule": [0.2, 0.5, 1.0, 2.0, 5.0],
    "webhook_timeout_seconds": 2.0,
    "oauth_access_token_lifetime": 3600,  # seconds (expires_in of OAuth access tokens)
    "oauth_refresh_token_lifetime": 60 * 24 * 3600,  # Pleo: at least 60 days
    "oauth_code_lifetime": 60,  # seconds an authorization code may be exchanged
    # Steady rate limit (pleo_sandbox.ratelimit): 0 is off; the demo sets Pleo's 600.
    "rate_limit_per_minute": 0,
    "rate_limit_scope": "credential",  # credential | oauth_client | global
    "rate_limit_window_seconds": 60.0,  # the "minute" (shorter in tests)
    # Documented variants and silences (pleo_sandbox.variants).
    **variants.SWITCH_DEFAULTS,
}
_INT_SWITCHES = (
    "page_size_default",
    "page_size_max",
    "default_expires_in",
    "oauth_access_token_lifetime",
    "oauth_refresh_token_lifetime",
    "oauth_code_lifetime",
)
_SWITCH_CHOICES = {
    "list_order": ("chronological", "reverse", "shuffled"),
    "started_on_in_progress": ("422", "202"),
    "failed_on_pending": ("422", "202"),
    "item_updates_on_pending": ("accept", "422"),
    "rate_limit_scope": RATE_LIMIT_SCOPES,
    **variants.CHOICE_SWITCHES,
}
_BOOL_SWITCHES = ("conflict_on_create", *variants.BOOL_SWITCHES)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return bool(value)


def _bad(message: str) -> ApiError:
    return ApiError(400, "BAD_REQUEST", message)


def _uuid(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _bad(f"'{name}' must be a UUID string.")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise _bad(f"'{name}' is not a valid UUID.")


def _optional_str(body: Mapping, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise _bad(f"'{name}' must be a string.")
    return value


def _enum(value: Any, allowed: Sequence[str], name: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise _bad(f"'{name}' must be one of {', '.join(allowed)}.")
    return value


# ----------------------------------------------------------------------------------------------
# Entities
# ----------------------------------------------------------------------------------------------
@dataclass
class Company:
    id: str
    name: str
    currency: str
    profile: CompanyProfile = field(repr=False)
    organisation_id: str | None = None
    contra_accounts_configured: bool = True

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "currency": self.currency,
            "organisationId": self.organisation_id,
            "contraAccountsConfigured": self.contra_accounts_configured,
        }


@dataclass
class Organisation:
    id: str
    name: str
    company_ids: list[str]

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "companyIds": list(self.company_ids)}


@dataclass
class Credential:
    """An API key (``kind="api_key"``) or registered bearer token (``kind="token"``)."""

    id: str
    kind: str
    secret: str = field(repr=False)
    company_ids: tuple[str, ...] = ()
    organisation_id: str | None = None
    scopes: frozenset[str] = frozenset(SCOPES)
    label: str | None = None
    revoked: bool = False
    expires_at: datetime | None = None

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def key(self) -> str:
        return self.secret

    @property
    def token(self) -> str:
        return self.secret

    @property
    def actor_urn(self) -> str:
        if self.organisation_id:
            return f"urn:pleo:organisation:{self.organisation_id}"
        return f"urn:pleo:company:{self.company_ids[0]}" if self.company_ids else "urn:pleo:unknown"

    def auth_header(self) -> dict[str, str]:
        """The ``Authorization`` header Pleo expects for this credential."""
        if self.kind == "token":
            return {"Authorization": f"Bearer {self.secret}"}
        raw = base64.b64encode(f"{self.secret}:".encode()).decode("ascii")
        return {"Authorization": f"Basic {raw}"}

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "secret": self.secret,
            "companyIds": list(self.company_ids),
            "organisationId": self.organisation_id,
            "scopes": sorted(self.scopes),
            "label": self.label,
            "revoked": self.revoked,
            "expiresAt": iso(self.expires_at),
            "identity": self.identity,
            "authorization": self.auth_header()["Authorization"],
        }


@dataclass
class JobItem:
    accounting_entry_id: str
    job_id: str
    kind: str
    status: str = "pending"
    exported_at: str | None = None
    external_id: str | None = None
    external_url: str | None = None
    failure_reason: str | None = None
    failure_reason_type: str | None = None

    def to_api(self) -> dict:
        return {
            "accountingEntryId": self.accounting_entry_id,
            "exportJobId": self.job_id,
            "status": self.status,
            "exportedAt": self.exported_at,
            "externalId": self.external_id,
            "externalUrl": self.external_url,
            "failureReason": self.failure_reason,
            "failureReasonType": self.failure_reason_type,
        }


@dataclass
class Job:
    id: str
    company_id: str
    created_at: datetime
    expires_in: int
    is_interactive: bool
    vendor_based_bookkeeping: bool
    created_by: str | None
    seq: int
    status: str = "pending"
    started_at: datetime | None = None
    last_updated_at: datetime | None = None
    completed_at: datetime | None = None
    expired_at: datetime | None = None
    failure_reason: str | None = None
    failure_reason_type: str | None = None
    items: dict[str, JobItem] = field(default_factory=dict)
    export_items: dict[str, dict] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    item_updates: list[dict] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status not in UNFINISHED_JOB_STATUSES

    def to_api(self) -> dict:
        return {
            "id": self.id,
            "companyId": self.company_id,
            "status": self.status,
            "createdAt": iso(self.created_at),
            "createdBy": self.created_by,
            "expiresIn": self.expires_in,
            "isInteractive": self.is_interactive,
            "numberOfItems": len(self.items),
            "vendorBasedBookkeeping": self.vendor_based_bookkeeping,
            "startedAt": iso(self.started_at),
            "lastUpdatedAt": iso(self.last_updated_at),
            "completedAt": iso(self.completed_at),
            "expiredAt": iso(self.expired_at),
            "failureReason": self.failure_reason,
            "failureReasonType": self.failure_reason_type,
        }


@dataclass
class Subscription:
    id: str
    owner_id: str
    endpoint_url: str
    event_types: list[str]
    status: str
    custom_headers: dict[str, str]
    auth_type: str
    auth_username: str | None
    auth_password: str | None = field(repr=False)
    secret: str = field(repr=False)
    created_at: datetime
    updated_at: datetime
    seq: int
    deleted_at: datetime | None = None
    deleted_by: str | None = None
    activities: list[dict] = field(default_factory=list)

    def to_api(self, spelling: str = JOB_CREATED_EVENT) -> dict:
        """``spelling``: how the created event is shown (the ``event_type_spelling`` switch)."""
        auth: dict[str, Any] = {"type": self.auth_type}
        if self.auth_type == "BASIC":
            # Echo the username only: passwords are never returned.
            auth["credentials"] = {"username": self.auth_username or ""}
        out = {
            "id": self.id,
            "endpointUrl": self.endpoint_url,
            "eventTypes": variants.shown_event_types(self.event_types, spelling),
            "status": self.status,
            "customHeaders": dict(self.custom_headers),
            "endpointAuth": auth,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }
        if self.deleted_at is not None:
            out["deletedAt"] = iso(self.deleted_at)
            out["deletedBy"] = self.deleted_by
        return out


# ----------------------------------------------------------------------------------------------
# State
# ----------------------------------------------------------------------------------------------
class SandboxState:
    """In-memory Pleo plus the Python control API (see the package docstring for the list)."""

    def __init__(self, seed: int | None = None, clock: SandboxClock | None = None) -> None:
        self._lock = threading.RLock()
        self.clock = clock or SandboxClock()
        self.seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
        self.faults = FaultRegistry()
        self.request_log = RequestLog()
        self.webhooks = WebhookDispatcher(
            self.clock,
            schedule=lambda: self._switches["webhook_retry_schedule"],
            timeout=lambda: float(self._switches["webhook_timeout_seconds"]),
            is_active=self._subscription_active,
        )
        self.base_url = "http://127.0.0.1"
        # Set by the server on stop so stalled handlers wake up at once.
        self.stop_event = threading.Event()
        self.oauth = OAuthServer(self)
        self.rate_limiter = RateLimiter()
        self._init_data()

    def _init_data(self) -> None:
        self._rng = random.Random(self.seed)
        self._switches: dict[str, Any] = {
            k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULT_SWITCHES.items()
        }
        self._companies: dict[str, Company] = {}
        self._organisations: dict[str, Organisation] = {}
        self._credentials: dict[str, Credential] = {}
        self._by_secret: dict[str, str] = {}
        self._jobs: dict[str, Job] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._files: dict[str, dict] = {}
        self._seq = 0
        self.oauth.reset()

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _new_id(self) -> str:
        return new_uuid(self._rng)

    # ==========================================================================================
    # Control API: setup
    # ==========================================================================================
    def reset(self, seed: int | None = None) -> None:
        """Forget everything: data, switches, faults, logs, queued webhooks, clock offset."""
        with self._lock:
            if seed is not None:
                self.seed = seed
            self._init_data()
            self.rate_limiter.reset()
            self.faults.clear()
            self.request_log.clear()
            self.webhooks.reset()
            self.clock.set_offset(0)

    def add_company(
        self,
        name: str | None = None,
        *,
        currency: str = "DKK",
        company_id: str | None = None,
        organisation_id: str | None = None,
        contra_accounts_configured: bool = True,
    ) -> Company:
        with self._lock:
            cid = str(uuid.UUID(company_id)) if company_id else self._new_id()
            if cid in self._companies:
                raise ValueError(f"company {cid} exists")
            if organisation_id is not None and organisation_id not in self._organisations:
                raise ValueError(f"unknown organisation {organisation_id}")
            profile = CompanyProfile.generate(random.Random(f"{self.seed}/company/{cid}"), currency)
            company = Company(
                id=cid,
                name=name or f"Sandbox Company {len(self._companies) + 1}",
                currency=currency,
                profile=profile,
                organisation_id=organisation_id,
                contra_accounts_configured=contra_accounts_configured,
            )
            self._companies[cid] = company
            if organisation_id is not None:
                self._organisations[organisation_id].company_ids.append(cid)
            return company

    def update_company(self, company_id: str, *, contra_accounts_configured: bool) -> Company:
        with self._lock:
            company = self._company(company_id)
            company.contra_accounts_configured = contra_accounts_configured
            return company

    def add_organisation(
        self,
        name: str | None = None,
        *,
        company_ids: Iterable[str] = (),
        n_companies: int = 0,
        currency: str = "DKK",
    ) -> Organisation:
        """An organisation holding ``company_ids`` plus ``n_companies`` new companies."""
        with self._lock:
            org = Organisation(
                id=self._new_id(),
                name=name or f"Sandbox Organisation {len(self._organisations) + 1}",
                company_ids=[],
            )
            self._organisations[org.id] = org
            for cid in company_ids:
                company = self._company(cid)
                company.organisation_id = org.id
                org.company_ids.append(company.id)
            for _ in range(n_companies):
                self.add_company(currency=currency, organisation_id=org.id)
            return org

    def _add_credential(
        self,
        kind: str,
        secret: str | None,
        company_id: str | None,
        company_ids: Iterable[str] | None,
        organisation_id: str | None,
        scopes: Iterable[str] | None,
        label: str | None,
        expires_in: float | None = None,
    ) -> Credential:
        with self._lock:
            ids = [company_id] if company_id else []
            ids += list(company_ids or [])
            for cid in ids:
                self._company(cid)
            if organisation_id is not None and organisation_id not in self._organisations:
                raise ValueError(f"unknown organisation {organisation_id}")
            if not ids and organisation_id is None:
                raise ValueError("a credential needs a company, companies or an organisation")
            scope_set = frozenset(scopes) if scopes is not None else frozenset(SCOPES)
            unknown = scope_set - set(SCOPES)
            if unknown:
                raise ValueError(f"unknown scopes {sorted(unknown)}")
            if secret is None:
                prefix = "pleo_sbx_" if kind == "api_key" else "sbx_at_"
                secret = prefix + self._rng.randbytes(24).hex()
            if secret in self._by_secret:
                raise ValueError("that key/token is already registered")
            cred = Credential(
                id=("key_" if kind == "api_key" else "tok_") + self._rng.randbytes(6).hex(),
                kind=kind,
                secret=secret,
                company_ids=tuple(str(uuid.UUID(c)) for c in ids),
                organisation_id=organisation_id,
                scopes=scope_set,
                label=label,
                expires_at=(
                    self.clock.now() + timedelta(seconds=expires_in)
                    if expires_in is not None
                    else None
                ),
            )
            self._credentials[cred.id] = cred
            self._by_secret[secret] = cred.id
            return cred

    def add_api_key(
        self,
        company_id: str | None = None,
        *,
        company_ids: Iterable[str] | None = None,
        organisation_id: str | None = None,
        key: str | None = None,
        scopes: Iterable[str] | None = None,
        label: str | None = None,
    ) -> Credential:
        """An API key for one company, several companies or an organisation."""
        return self._add_credential(
            "api_key", key, company_id, company_ids, organisation_id, scopes, label
        )

    def add_token(
        self,
        company_id: str | None = None,
        *,
        company_ids: Iterable[str] | None = None,
        organisation_id: str | None = None,
        token: str | None = None,
        scopes: Iterable[str] | None = None,
        expires_in: float | None = None,
        label: str | None = None,
    ) -> Credential:
        """A registered bearer access token (optionally expiring on the sandbox clock)."""
        return self._add_credential(
            "token", token, company_id, company_ids, organisation_id, scopes, label, expires_in
        )

    def revoke(self, credential_id: str) -> Credential:
        with self._lock:
            cred = self._credentials[credential_id]
            cred.revoked = True
            return cred

    def credentials(self) -> list[Credential]:
        with self._lock:
            return list(self._credentials.values())

    def companies(self) -> list[Company]:
        with self._lock:
            return list(self._companies.values())

    def organisations(self) -> list[Organisation]:
        with self._lock:
            return list(self._organisations.values())

    # ==========================================================================================
    # Control API: OAuth 2.0 (pleo_sandbox.oauth)
    # ==========================================================================================
    def add_oauth_client(
        self,
        client_id: str | None = None,
        *,
        client_secret: str | None = None,
        redirect_uris: Iterable[str] | str = (),
        company_id: str | None = None,
        company_ids: Iterable[str] | None = None,
        organisation_id: str | None = None,
        scopes: Iterable[str] | str | None = None,
        name: str | None = None,
    ) -> OAuthClient:
        """Register an OAuth client (``.client_id``, ``.client_secret``, ``.redirect_uris``)."""
        return self.oauth.add_client(
            client_id,
            client_secret=client_secret,
            redirect_uris=redirect_uris,
            company_id=company_id,
            company_ids=company_ids,
            organisation_id=organisation_id,
            scopes=scopes,
            name=name,
        )

    def oauth_clients(self) -> list[OAuthClient]:
        return self.oauth.clients()

    def oauth_authorize(
        self, url: str | None = None, *, decision: str = "approve", **params
    ) -> str:
        """Approve (or ``decision="deny"``) an authorize request given as its URL or its
        parameters, as the user would on the consent page; returns the redirect URL."""
        return self.oauth.authorize(url, decision=decision, **params)

    def oauth_issue_tokens(self, client_id: str, *, scopes: Iterable[str] | None = None) -> dict:
        """A fresh token family for ``client_id`` without the authorize round trip:
        ``{access_token, refresh_token, expires_in, token_type, scope, grantId}``."""
        return self.oauth.issue_tokens(client_id, scopes=scopes)

    def oauth_grants(self) -> list[dict]:
        """Every authorisation (token family) with its refresh tokens' statuses (no secrets)."""
        return self.oauth.grants()

    def oauth_refresh_token_status(self, refresh_token: str) -> str | None:
        """``active``, ``rotated``, ``revoked`` or None for an unknown token."""
        return self.oauth.refresh_token_status(refresh_token)

    def oauth_revoke_grant(self, grant_id: str) -> dict:
        return self.oauth.revoke_grant(grant_id)

    # ==========================================================================================
    # Control API: jobs
    # ==========================================================================================
    def create_job(
        self,
        company_id: str,
        items: int | Sequence[str] | Mapping[str, int] = 3,
        *,
        created_at: datetime | str | None = None,
        expires_in: int | None = None,
        vendor_based_bookkeeping: bool = False,
        is_interactive: bool = True,
        created_by: str | None = None,
        accounting_entry_ids: Sequence[str] | None = None,
        notify: bool = True,
        conflict_check: bool = False,
    ) -> dict:
        """Create a pending job as Pleo's web app would; returns its API representation.

        ``items``: a count (all ``normal``), a list of kinds, or ``{kind: count}`` (in order);
        kinds are ``normal``, ``foreign``, ``refund``, ``missing_account``, ``missing_contra``.
        ``notify`` sends the ``v1.export-job.created`` webhook. The ``conflict_on_create`` rule
        (one unfinished job per company) is bypassed unless ``conflict_check``: then a company
        with an unfinished job raises the 409 ``ApiError`` that ``POST /v3/export-jobs`` answers.
        """
        kinds = self._expand_kinds(items)
        with self._lock:
            self._sweep()
            company = self._company(company_id)
            if conflict_check:
                self._check_conflict(company.id)
            if accounting_entry_ids is not None:
                if len(accounting_entry_ids) != len(kinds):
                    kinds = ["normal"] * len(accounting_entry_ids)
                entry_ids = [str(uuid.UUID(e)) for e in accounting_entry_ids]
            else:
                entry_ids = [self._new_id() for _ in kinds]
            if isinstance(created_at, str):
                created_at = parse_iso(created_at)
            job = self._create_job(
                company,
                list(zip(entry_ids, kinds, strict=True)),
                created_at=created_at or self.clock.now(),
                expires_in=expires_in,
                vendor_based_bookkeeping=vendor_based_bookkeeping,
                is_interactive=is_interactive,
                # As if a user of the company clicked Export in the web app.
                created_by=created_by or self._rng.choice(company.profile.users)["id"],
            )
            job.events.append(self._event_record(job, "created", CONTROL_IDENTITY, True, None))
            # The webhook carries the job as created (pending), even if it is already overdue.
            deliveries = self._job_created_deliveries(job) if notify else []
            self._sweep()
            out = job.to_api()
        for delivery in deliveries:
            self.webhooks.enqueue(delivery)
        return out

    @staticmethod
    def _expand_kinds(items: int | Sequence[str] | Mapping[str, int]) -> list[str]:
        if isinstance(items, int):
            kinds = ["normal"] * items
        elif isinstance(items, Mapping):
            kinds = [k for k, n in items.items() for _ in range(int(n))]
        else:
            kinds = list(items)
        for kind in kinds:
            if kind not in ITEM_KINDS:
                raise ValueError(f"unknown item kind {kind!r}; expected one of {ITEM_KINDS}")
        return kinds

    def _create_job(
        self,
        company: Company,
        entries: list[tuple[str, str]],
        *,
        created_at: datetime,
        expires_in: int | None,
        vendor_based_bookkeeping: bool,
        is_interactive: bool,
        created_by: str | None,
    ) -> Job:
        job = Job(
            id=self._new_id(),
            company_id=company.id,
            created_at=created_at,
            expires_in=int(
                expires_in if expires_in is not None else self._switches["default_expires_in"]
            ),
            is_interactive=is_interactive,
            vendor_based_bookkeeping=vendor_based_bookkeeping,
            created_by=created_by,
            seq=self._next_seq(),
        )
        for entry_id, kind in entries:
            if entry_id in job.items:
                raise _bad(f"Duplicate accounting entry id {entry_id}.")
            job.items[entry_id] = JobItem(entry_id, job.id, kind)
            item = generate_export_item(
                random.Random(f"{self.seed}/item/{entry_id}/{kind}"),
                profile=company.profile,
                company_id=company.id,
                accounting_entry_id=entry_id,
                kind=kind,
                job_created_at=created_at,
                vendor_based_bookkeeping=vendor_based_bookkeeping,
            )
            for f in item["files"]:
                self._files[f["fileId"]] = {**f, "accountingEntryId": entry_id}
            job.export_items[entry_id] = item
        self._jobs[job.id] = job
        return job

    def get_job(self, job_id: str) -> dict:
        """Everything about a job: ``{"job", "items" (with kinds), "events", "itemUpdates"}``."""
        with self._lock:
            self._sweep()
            job = self._jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            return {
                "job": job.to_api(),
                "items": [{**i.to_api(), "kind": i.kind} for i in job.items.values()],
                "events": [dict(e) for e in job.events],
                "itemUpdates": [dict(u) for u in job.item_updates],
            }

    def list_jobs(self, company_id: str | None = None) -> list[dict]:
        with self._lock:
            self._sweep()
            return [
                j.to_api()
                for j in sorted(self._jobs.values(), key=lambda j: j.seq)
                if company_id is None or j.company_id == company_id
            ]

    def export_items(self, job_id: str) -> list[dict]:
        """The job's ExportItemV3 payloads, whatever its status (control view)."""
        with self._lock:
            job = self._jobs[job_id]
            return [self._render_export_item(job, e) for e in job.items]

    def start_as_other_integration(self, job_id: str) -> bool:
        """Another integration posts ``started`` for the job; True if it moved to in_progress."""
        with self._lock:
            self._sweep()
            job = self._jobs[job_id]
            if job.status != "pending":
                return False
            self._apply_event(job, "started", OTHER_INTEGRATION, None, None, None)
            return True

    def set_job_status(self, job_id: str, status: str, **fields: Any) -> dict:
        """Force a job's status (escape hatch for test set-up; no transition rules)."""
        with self._lock:
            job = self._jobs[job_id]
            job.status = _enum(status, (*JOB_STATUSES, variants.EXPIRED_STATUS), "status")
            for name, value in fields.items():
                setattr(job, name, value)
            return job.to_api()

    def send_job_created_webhook(self, job_id: str) -> int:
        """(Re)send ``v1.export-job.created`` for a job as a new event; returns deliveries."""
        with self._lock:
            deliveries = self._job_created_deliveries(self._jobs[job_id])
        for delivery in deliveries:
            self.webhooks.enqueue(delivery)
        return len(deliveries)

    def seed_companies(
        self, n: int, *, jobs_per_company: int = 2, items_per_job: int | Mapping[str, int] = 3
    ) -> list[dict]:
        """``n`` companies, each with an API key and ``jobs_per_company`` pending jobs."""
        out = []
        for i in range(n):
            company = self.add_company(currency=WALLET_CURRENCIES[i % len(WALLET_CURRENCIES)])
            key = self.add_api_key(company.id, label=f"seed-{i + 1}")
            jobs = [
                self.create_job(
                    company.id,
                    items_per_job,
                    created_at=self.clock.now() - timedelta(minutes=5 * (jobs_per_company - j)),
                )["id"]
                for j in range(jobs_per_company)
            ]
            out.append(
                {
                    "company": company.to_dict(),
                    "apiKey": key.secret,
                    "credentialId": key.id,
                    "jobIds": jobs,
                }
            )
        return out

    # ==========================================================================================
    # Control API: clock, switches, faults, logs
    # ==========================================================================================
    def now(self) -> datetime:
        return self.clock.now()

    def advance_clock(self, seconds: float) -> datetime:
        """Move the sandbox clock forward (or back) and apply expiry at the new time."""
        with self._lock:
            now = self.clock.advance(seconds)
            self._sweep()
            return now

    def set_clock_offset(self, seconds: float) -> datetime:
        with self._lock:
            now = self.clock.set_offset(seconds)
            self._sweep()
            return now

    @property
    def switches(self) -> dict[str, Any]:
        with self._lock:
            return {k: (list(v) if isinstance(v, list) else v) for k, v in self._switches.items()}

    def set_switches(self, **switches: Any) -> dict[str, Any]:
        """Change switches (see ``DEFAULT_SWITCHES``); unknown names or values raise."""
        with self._lock:
            for name, value in switches.items():
                if name not in DEFAULT_SWITCHES:
                    raise ValueError(f"unknown switch {name!r}")
                if name in _SWITCH_CHOICES:
                    value = str(value)
                    if value not in _SWITCH_CHOICES[name]:
                        raise ValueError(f"switch {name} must be one of {_SWITCH_CHOICES[name]}")
                elif name in _BOOL_SWITCHES:
                    value = _as_bool(value)
                elif name == "rate_limit_per_minute":
                    value = int(value)
                    if value < 0:
                        raise ValueError("rate_limit_per_minute must be >= 0 (0: no limit)")
                elif name == "webhook_retry_schedule":
                    value = [float(v) for v in value]
                    if any(v < 0 for v in value):
                        raise ValueError("webhook_retry_schedule delays must be >= 0")
                elif name in _INT_SWITCHES:
                    value = int(value)
                    if value < 1:
                        raise ValueError(f"switch {name} must be at least 1")
                else:
                    value = float(value)
                    if value < 0 or (value == 0 and name == "rate_limit_window_seconds"):
                        raise ValueError(f"switch {name} must be >= 0 (a window > 0)")
                self._switches[name] = value
            self._sweep()
            return self.switches

    def reset_switches(self) -> dict[str, Any]:
        with self._lock:
            self._switches = {
                k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULT_SWITCHES.items()
            }
            return self.switches

    def add_fault(self, kind: str, method: str | None = None, path: Any = None, **params) -> Fault:
        """Add a fault (see :mod:`pleo_sandbox.faults` for kinds and parameters)."""
        return self.faults.add(Fault(kind=kind, method=method, path=path, **params))

    def remove_fault(self, fault_id: str) -> bool:
        return self.faults.remove(fault_id)

    def clear_faults(self) -> None:
        self.faults.clear()

    def requests(self, method: str | None = None, path: str | None = None) -> list[dict]:
        """The request log (oldest first), optionally filtered by method and exact path."""
        return self.request_log.entries(method=method, path=path)

    def clear_requests(self) -> None:
        self.request_log.clear()

    def webhook_deliveries(self) -> list[dict]:
        """One entry per delivery attempt, oldest first."""
        return self.webhooks.log()

    def wait_for_deliveries(self, count: int = 1, timeout: float = 5.0, **match: Any) -> list[dict]:
        """Wait until ``count`` attempts whose fields equal ``match`` are logged; return them."""

        def matching(log: list[dict]) -> list[dict]:
            return [e for e in log if all(e.get(k) == v for k, v in match.items())]

        self.webhooks.wait_for(lambda log: len(matching(log)) >= count, timeout)
        return matching(self.webhooks.log())

    def subscriptions(self) -> list[dict]:
        """Every live subscription, with its owner credential id (control view, no secrets)."""
        with self._lock:
            return [
                {**s.to_api(self._spelling()), "ownerCredentialId": s.owner_id}
                for s in self._subscriptions.values()
                if s.deleted_at is None
            ]

    def file(self, file_id: str) -> dict | None:
        with self._lock:
            f = self._files.get(file_id)
            return dict(f) if f else None

    # ==========================================================================================
    # Authentication
    # ==========================================================================================
    def _lookup(self, authorization: str | None) -> tuple[Credential | None, str]:
        if not authorization:
            return None, "Full authentication is required to access this resource."
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None, "Malformed Basic credentials."
            key, sep, password = decoded.partition(":")
            if not sep or not key or password:
                return None, "Use the API key as username and an empty password."
            cred = self._credentials.get(self._by_secret.get(key, ""))
            if cred is None or cred.kind != "api_key":
                return None, "Invalid API key."
        elif scheme.lower() == "bearer":
            cred = self._credentials.get(self._by_secret.get(value, ""))
            if cred is None or cred.kind != "token":
                return None, "Invalid access token."
        else:
            return None, "Unsupported authorization scheme."
        if cred.revoked:
            return None, "Credentials have been revoked."
        if cred.expires_at is not None and self.clock.now() >= cred.expires_at:
            return None, "Access token expired."
        return cred, ""

    def identity_for(self, authorization: str | None) -> str | None:
        """Who a request claims to be, for the log: ``api_key:<id>``/``token:<id>``, never raw."""
        with self._lock:
            if not authorization:
                return None
            scheme, _, value = authorization.strip().partition(" ")
            secret = value.strip()
            if scheme.lower() == "basic":
                try:
                    secret = base64.b64decode(secret, validate=True).decode().partition(":")[0]
                except (binascii.Error, UnicodeDecodeError):
                    return "invalid"
            cred = self._credentials.get(self._by_secret.get(secret, ""))
            return cred.identity if cred else "unknown"

    def authenticate(self, authorization: str | None) -> Credential:
        with self._lock:
            cred, reason = self._lookup(authorization)
            if cred is None:
                raise ApiError(
                    401, "UNAUTHORIZED", reason, {"WWW-Authenticate": 'Basic realm="pleo"'}
                )
            return cred

    @staticmethod
    def require_scope(cred: Credential, scope: str) -> None:
        if scope not in cred.scopes:
            raise ApiError(403, "FORBIDDEN", f"Insufficient scope: '{scope}' is required.")

    def _visible_companies(self, cred: Credential) -> set[str]:
        ids = set(cred.company_ids)
        if cred.organisation_id and cred.organisation_id in self._organisations:
            ids.update(self._organisations[cred.organisation_id].company_ids)
        return ids

    # ==========================================================================================
    # Internals
    # ==========================================================================================
    def _company(self, company_id: str) -> Company:
        try:
            return self._companies[str(uuid.UUID(str(company_id)))]
        except (KeyError, ValueError):
            raise ValueError(f"unknown company {company_id}")

    def _visible_job(self, cred: Credential, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None or job.company_id not in self._visible_companies(cred):
            raise ApiError(404, "EXPORT_NOT_FOUND", MSG_JOB_NOT_FOUND)
        return job

    def _sweep(self) -> None:
        """Expire every unfinished job whose last action is ``expiresIn`` (+ lag) seconds old."""
        now = self.clock.now()
        lag = timedelta(seconds=float(self._switches["expiry_lag_seconds"]))
        for job in self._jobs.values():
            if job.finished:
                continue
            reference = job.last_updated_at or job.created_at
            deadline = reference + timedelta(seconds=job.expires_in)
            if now < deadline + lag:
                continue
            before = job.status
            job.status, job.failure_reason_type, job.failure_reason = variants.expired_fields(
                bool(self._switches["expired_status"]), MSG_EXPIRED
            )
            job.expired_at = deadline + lag
            self._abandon_items(job)
            job.events.append(
                {
                    "at": iso(job.expired_at),
                    "event": "expired",
                    "identity": EXPIRY_SWEEPER,
                    "accepted": True,
                    "statusBefore": before,
                    "statusAfter": job.status,
                    "failureReason": job.failure_reason,
                    "failureReasonType": job.failure_reason_type,
                    "requestId": None,
                }
            )

    @staticmethod
    def _abandon_items(job: Job) -> None:
        for item in job.items.values():
            if item.status in UNFINISHED_ITEM_STATUSES:
                item.status = "abandoned"

    def _event_record(
        self,
        job: Job,
        event: str,
        identity: str,
        accepted: bool,
        before: str | None,
        failure_reason: str | None = None,
        failure_reason_type: str | None = None,
        request_id: str | None = None,
    ) -> dict:
        return {
            "at": iso(self.clock.now()),
            "event": event,
            "identity": identity,
            "accepted": accepted,
            "statusBefore": before,
            "statusAfter": job.status,
            "failureReason": failure_reason,
            "failureReasonType": failure_reason_type,
            "requestId": request_id,
        }

    def _apply_event(
        self,
        job: Job,
        event: str,
        identity: str,
        failure_reason: str | None,
        failure_reason_type: str | None,
        request_id: str | None,
    ) -> bool:
        """Apply one job event; record it; return whether it was accepted."""
        now = self.clock.now()
        before = job.status
        target = TRANSITIONS.get((before, event))
        if target is None and (before, event) == ("pending", "failed"):
            if self._switches["failed_on_pending"] == "202":
                target = "failed"
        started_again_ok = self._switches["started_on_in_progress"] == "202"
        idempotent = (before, event) == ("in_progress", "started") and started_again_ok
        if target is None and not idempotent:
            job.events.append(
                self._event_record(
                    job,
                    event,
                    identity,
                    False,
                    before,
                    failure_reason,
                    failure_reason_type,
                    request_id,
                )
            )
            return False
        if target is not None:
            job.status = target
            if event == "started":
                job.started_at = now
            if event in FINAL_EVENTS:
                job.completed_at = now
            if event == "failed":
                job.failure_reason = failure_reason
                job.failure_reason_type = failure_reason_type
                self._abandon_items(job)
        job.last_updated_at = now
        job.events.append(
            self._event_record(
                job, event, identity, True, before, failure_reason, failure_reason_type, request_id
            )
        )
        return True

    def _ordered(self, rows: list, key) -> list:
        order = self._switches["list_order"]
        rows = sorted(rows, key=key)
        if order == "reverse":
            rows.reverse()
        elif order == "shuffled":
            # Stable for a given seed, so paging through a shuffled list stays consistent.
            rows.sort(key=lambda r: hashlib.sha256(f"{self.seed}/{_row_id(r)}".encode()).digest())
        return rows

    def _page(self, rows: list, query: dict[str, list[str]], sort_fields=None):
        return paginate(
            rows,
            query,
            default_limit=int(self._switches["page_size_default"]),
            max_limit=int(self._switches["page_size_max"]),
            sort_fields=sort_fields,
        )

    def _render_export_item(self, job: Job, entry_id: str) -> dict:
        stored = job.export_items[entry_id]
        expires = int((self.clock.now() + timedelta(hours=24)).timestamp())
        item = {
            "_links": {
                "web": {"exportItem": f"https://app.pleo.io/export/{job.id}/{entry_id}"},
                "mobile": {"exportItem": f"pleo://export/{job.id}/{entry_id}"},
                "api": {"exportItem": f"{self.base_url}/v3/export-items?job_id={job.id}"},
            }
        }
        item.update({k: v for k, v in stored.items() if k != "files"})
        item["files"] = [
            {
                "url": f"{self.base_url}/files/{f['fileId']}?expires={expires}",
                "type": f["type"],
                "size": f["size"],
            }
            for f in stored["files"]
        ]
        return _deep_copy(item)

    def _job_created_deliveries(self, job: Job) -> list[Delivery]:
        data = {
            "companyId": job.company_id,
            "createdAt": iso(job.created_at),
            "createdBy": job.created_by,
            "expiresIn": job.expires_in,
            "id": job.id,
            "numberOfItems": len(job.items),
            "status": job.status,
        }
        deliveries = []
        for sub in sorted(self._subscriptions.values(), key=lambda s: s.seq):
            owner = self._credentials.get(sub.owner_id)
            if (
                sub.deleted_at is not None
                or sub.status != "ACTIVE"
                or not any(variants.is_job_created(t) for t in sub.event_types)
                or owner is None
                or owner.revoked
                or job.company_id not in self._visible_companies(owner)
            ):
                continue
            spelling = self._spelling()
            body = {"data": data, "eventId": self._new_id(), "eventType": spelling}
            deliveries.append(
                Delivery(
                    id=f"dlv_{self._rng.randbytes(8).hex()}",
                    webhook_id=new_message_id(self._rng),
                    event_id=body["eventId"],
                    event_type=spelling,
                    subscription_id=sub.id,
                    url=sub.endpoint_url,
                    secret=sub.secret,
                    custom_headers=dict(sub.custom_headers),
                    basic_auth=(
                        (sub.auth_username or "", sub.auth_password or "")
                        if sub.auth_type == "BASIC"
                        else None
                    ),
                    body=json.dumps(body, separators=(",", ":")).encode(),
                    job_id=job.id,
                )
            )
        return deliveries

    def _check_conflict(self, company_id: str) -> None:
        """The ``conflict_on_create`` switch: 409 while the company has an unfinished job."""
        if self._switches["conflict_on_create"] and any(
            j.company_id == company_id and not j.finished for j in self._jobs.values()
        ):
            raise ApiError(409, "EXPORT_ALREADY_IN_PROGRESS", MSG_ALREADY_IN_PROGRESS)

    def count_request(self, cred: Credential) -> None:
        """The steady rate limit (``rate_limit_*`` switches): 429 with ``Retry-After`` past it."""
        limit = int(self._switches["rate_limit_per_minute"])
        if limit <= 0:
            return
        key = rate_limit_key(cred, self._switches["rate_limit_scope"])
        wait = self.rate_limiter.take(
            key, limit, float(self._switches["rate_limit_window_seconds"])
        )
        if wait is not None:
            retry_after = RateLimiter.retry_after_header(wait)
            raise ApiError(429, "TOO_MANY_REQUESTS", MSG_RATE_LIMITED, {"Retry-After": retry_after})

    def error_body(self, body: Any) -> Any:
        """An error answer's body as sent (the ``error_type_case`` switch)."""
        return variants.with_error_case(body, self._switches["error_type_case"])

    def _spelling(self) -> str:
        return self._switches["event_type_spelling"]

    def _subscription_active(self, subscription_id: str) -> bool:
        with self._lock:
            sub = self._subscriptions.get(subscription_id)
            return sub is not None and sub.deleted_at is None and sub.status == "ACTIVE"

    # ==========================================================================================
    # Export API v3 (called by the HTTP layer with an authenticated credential)
    # ==========================================================================================
    def api_list_jobs(self, cred: Credential, query: dict[str, list[str]]) -> dict:
        self.require_scope(cred, "export-jobs:read")
        with self._lock:
            self._sweep()
            visible = self._visible_companies(cred)
            company_values = query.get("company_id") or []
            if len(company_values) > 1:
                raise _bad("Parameter 'company_id' given more than once.")
            if company_values:
                company_id = _uuid(company_values[0], "company_id")
                visible = visible & {company_id}
            statuses: list[str] = []
            for raw in query.get("statuses", []) + query.get("statuses[]", []):
                for value in raw.split(","):
                    if value:
                        allowed = variants.job_statuses(
                            JOB_STATUSES, bool(self._switches["expired_status"])
                        )
                        statuses.append(_enum(value, allowed, "statuses"))
            rows = [
                j
                for j in self._jobs.values()
                if j.company_id in visible and (not statuses or j.status in statuses)
            ]
            rows = self._ordered(rows, key=lambda j: (j.created_at, j.seq))
            page, info = self._page(
                rows,
                query,
                {
                    "createdAt": lambda j: j.created_at,
                    "id": lambda j: j.id,
                    "status": lambda j: j.status,
                    "lastUpdatedAt": lambda j: j.last_updated_at,
                },
            )
            return {"data": [j.to_api() for j in page], "pagination": info}

    def api_get_job(self, cred: Credential, job_id: str) -> dict:
        self.require_scope(cred, "export-jobs:read")
        with self._lock:
            self._sweep()
            return {"data": self._visible_job(cred, job_id).to_api()}

    def api_create_job(self, cred: Credential, body: Any) -> dict:
        self.require_scope(cred, "export-jobs:write")
        if not isinstance(body, dict):
            raise _bad("Request body must be a JSON object.")
        company_id = _uuid(body.get("companyId"), "companyId")
        entry_ids = body.get("accountingEntryIds")
        if not isinstance(entry_ids, list) or not entry_ids:
            raise _bad("'accountingEntryIds' must be a non-empty array of UUIDs.")
        entry_ids = [_uuid(e, "accountingEntryIds") for e in entry_ids]
        if len(set(entry_ids)) != len(entry_ids):
            raise _bad("'accountingEntryIds' contains duplicates.")
        employee_id = body.get("employeeId")
        if employee_id is not None:
            employee_id = _uuid(employee_id, "employeeId")
        interactive = body.get("isInteractive")
        if interactive is not None and not isinstance(interactive, bool):
            raise _bad("'isInteractive' must be a boolean.")
        options = body.get("options")
        if options is not None and not isinstance(options, dict):
            raise _bad("'options' must be an object.")
        vbb = (options or {}).get("vendorBasedBookkeeping")
        if vbb is not None and not isinstance(vbb, bool):
            raise _bad("'options.vendorBasedBookkeeping' must be a boolean.")
        with self._lock:
            self._sweep()
            if company_id not in self._visible_companies(cred):
                raise ApiError(403, "FORBIDDEN", "No access to this company.")
            company = self._companies[company_id]
            if not company.contra_accounts_configured:
                raise ApiError(400, "MISSING_CONTRA_ACCOUNTS", MSG_MISSING_CONTRA)
            self._check_conflict(company_id)
            entries = []
            for entry_id in entry_ids:
                roll = random.Random(f"{self.seed}/kind/{entry_id}").random()
                entries.append(
                    (entry_id, "normal" if roll < 0.7 else "foreign" if roll < 0.9 else "refund")
                )
            job = self._create_job(
                company,
                entries,
                created_at=self.clock.now(),
                expires_in=None,
                vendor_based_bookkeeping=bool(vbb),
                is_interactive=True if interactive is None else interactive,
                created_by=employee_id,
            )
            job.events.append(self._event_record(job, "created", cred.identity, True, None))
            deliveries = self._job_created_deliveries(job)
            out = {"data": job.to_api()}
        for delivery in deliveries:
            self.webhooks.enqueue(delivery)
        return out

    def parse_event_body(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise _bad("Request body must be a JSON object.")
        parsed = {
            "jobId": _uuid(body.get("jobId"), "jobId"),
            "event": _enum(body.get("event"), JOB_EVENTS, "event"),
            "failureReason": _optional_str(body, "failureReason"),
            "failureReasonType": None,
        }
        if body.get("failureReasonType") is not None:
            parsed["failureReasonType"] = _enum(
                body["failureReasonType"], JOB_FAILURE_REASON_TYPES, "failureReasonType"
            )
        return parsed

    def api_post_event(self, cred: Credential, body: Any, request_id: str | None = None) -> None:
        self.require_scope(cred, "export-jobs:write")
        parsed = self.parse_event_body(body)
        with self._lock:
            self._sweep()
            job = self._visible_job(cred, parsed["jobId"])
            self._strict_event_check(job, parsed, cred.identity, request_id)
            accepted = self._apply_event(
                job,
                parsed["event"],
                cred.identity,
                parsed["failureReason"],
                parsed["failureReasonType"],
                request_id,
            )
            if not accepted:
                raise ApiError(422, "INVALID_EXPORT_JOB_STATUS_CHANGE", MSG_INVALID_CHANGE)

    def _strict_event_check(
        self, job: Job, parsed: dict, identity: str, request_id: str | None
    ) -> None:
        """The ``strict_final_event`` switch: refuse (and record) what a strict Pleo would."""
        try:
            variants.check_event(
                strict=bool(self._switches["strict_final_event"]),
                event=parsed["event"],
                has_failure_fields=parsed["failureReason"] is not None
                or parsed["failureReasonType"] is not None,
                unfinished_items=sum(
                    i.status in UNFINISHED_ITEM_STATUSES for i in job.items.values()
                ),
                job_status=job.status,
            )
        except ApiError:
            job.events.append(
                self._event_record(
                    job,
                    parsed["event"],
                    identity,
                    False,
                    job.status,
                    parsed["failureReason"],
                    parsed["failureReasonType"],
                    request_id,
                )
            )
            raise

    def other_integration_preempts(self, body: Any) -> bool:
        """The ``other_integration_starts`` fault: start the body's job as someone else."""
        if not isinstance(body, dict):
            return False
        with self._lock:
            self._sweep()
            job = self._jobs.get(str(body.get("jobId")))
            if job is None or job.status != "pending":
                return False
            self._apply_event(job, "started", OTHER_INTEGRATION, None, None, None)
            return True

    def api_list_job_items(
        self, cred: Credential, job_id: str, query: dict[str, list[str]]
    ) -> dict:
        self.require_scope(cred, "export-jobs:read")
        status_values = query.get("status") or []
        if len(status_values) > 1:
            raise _bad("Parameter 'status' given more than once.")
        status = _enum(status_values[0], ITEM_STATUSES, "status") if status_values else None
        with self._lock:
            self._sweep()
            job = self._visible_job(cred, job_id)
            indexed = list(enumerate(job.items.values()))
            rows = [(i, it) for i, it in indexed if status is None or it.status == status]
            rows = [it for _, it in self._ordered(rows, key=lambda r: r[0])]
            page, info = self._page(
                rows,
                query,
                {
                    "accountingEntryId": lambda it: it.accounting_entry_id,
                    "status": lambda it: it.status,
                },
            )
            return {"data": [it.to_api() for it in page], "pagination": info}

    def _parse_item_update(self, index: int, element: Any) -> dict:
        where = f"element {index}"
        if not isinstance(element, dict):
            raise _bad(f"{where} must be an object.")
        parsed = {
            "accountingEntryId": _uuid(
                element.get("accountingEntryId"), f"{where}.accountingEntryId"
            ),
            "status": _enum(element.get("status"), ITEM_STATUSES, f"{where}.status"),
            "externalId": _optional_str(element, "externalId"),
            "externalUrl": _optional_str(element, "externalUrl"),
            "failureReason": _optional_str(element, "failureReason"),
            "failureReasonType": None,
            "exportedAt": None,
        }
        if element.get("failureReasonType") is not None:
            parsed["failureReasonType"] = _enum(
                element["failureReasonType"],
                ITEM_FAILURE_REASON_TYPES,
                f"{where}.failureReasonType",
            )
        exported = _optional_str(element, "exportedAt")
        if exported is not None:
            try:
                parsed["exportedAt"] = iso(parse_iso(exported))
            except ValueError:
                raise _bad(f"{where}.exportedAt is not an ISO-8601 date-time.")
        return parsed

    def api_update_items(
        self, cred: Credential, job_id: str, body: Any, request_id: str | None = None
    ) -> dict:
        self.require_scope(cred, "export-jobs:write")
        if not isinstance(body, list):
            raise _bad("Request body must be a JSON array of item updates.")
        if len(body) > MAX_ITEMS_PER_UPDATE:
            raise ApiError(413, "EXPORT_JOB_ITEMS_UPDATE_LIMIT", MSG_ITEMS_LIMIT)
        updates = [self._parse_item_update(i, e) for i, e in enumerate(body)]
        with self._lock:
            self._sweep()
            job = self._visible_job(cred, job_id)
            if job.finished:
                raise ApiError(422, "EXPORT_JOB_STATUS_UNPROCESSABLE", MSG_JOB_FINISHED_ITEMS)
            if job.status == "pending" and self._switches["item_updates_on_pending"] == "422":
                raise ApiError(422, "EXPORT_JOB_STATUS_UNPROCESSABLE", MSG_JOB_NOT_STARTED)
            data, errors = [], []
            for update in updates:
                item = job.items.get(update["accountingEntryId"])
                if item is None:
                    errors.append(
                        {
                            "accountingEntryId": update["accountingEntryId"],
                            "message": MSG_ENTRY_MISSING,
                            "type": variants.error_type(
                                "ACCOUNTING_ENTRY_DOES_NOT_EXIST", self._switches["error_type_case"]
                            ),
                        }
                    )
                    continue
                item.status = update["status"]
                item.exported_at = update["exportedAt"]
                item.external_id = update["externalId"]
                item.external_url = update["externalUrl"]
                item.failure_reason = update["failureReason"]
                item.failure_reason_type = update["failureReasonType"]
                data.append(item.to_api())
            if self._switches["put_refreshes_last_updated"]:
                job.last_updated_at = self.clock.now()
            job.item_updates.append(
                {
                    "at": iso(self.clock.now()),
                    "identity": cred.identity,
                    "requestId": request_id,
                    "updates": [
                        {"accountingEntryId": u["accountingEntryId"], "status": u["status"]}
                        for u in updates
                    ],
                    "errors": [e["accountingEntryId"] for e in errors],
                }
            )
            return {"data": data, "errors": errors}

    def api_list_export_items(self, cred: Credential, query: dict[str, list[str]]) -> dict:
        self.require_scope(cred, "export-items:read")
        job_values = query.get("job_id") or []
        if len(job_values) > 1:
            raise _bad("Parameter 'job_id' given more than once.")
        with self._lock:
            self._sweep()
            if job_values:
                job = self._visible_job(cred, _uuid(job_values[0], "job_id"))
                if job.finished:
                    raise ApiError(
                        422, "EXPORT_JOB_STATUS_UNPROCESSABLE", MSG_JOB_FINISHED_EXPORT_ITEMS
                    )
                jobs = [job]
            else:
                visible = self._visible_companies(cred)
                jobs = [
                    j
                    for j in sorted(self._jobs.values(), key=lambda j: j.seq)
                    if j.company_id in visible and not j.finished
                ]
            for job in jobs:
                if not self._companies[job.company_id].contra_accounts_configured:
                    raise ApiError(400, "MISSING_CONTRA_ACCOUNTS", MSG_MISSING_CONTRA)
            rows = [(job, e) for job in jobs for e in job.items]
            rows = self._ordered(list(enumerate(rows)), key=lambda r: r[0])
            rows = [r for _, r in rows]
            page, info = self._page(
                rows,
                query,
                {
                    "accountingEntryId": lambda r: r[1],
                    "date": lambda r: r[0].export_items[r[1]]["date"],
                },
            )
            return {"data": [self._render_export_item(j, e) for j, e in page], "pagination": info}

    # ==========================================================================================
    # Webhook subscriptions v1
    # ==========================================================================================
    def _parse_subscription(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise _bad("Request body must be a JSON object.")
        url = body.get("endpointUrl")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _bad("'endpointUrl' must be an http(s) URL.")
        types = body.get("eventTypes")
        if not isinstance(types, list) or not types:
            raise _bad("'eventTypes' must be a non-empty array.")
        for t in types:
            _enum(t, EVENT_TYPES, "eventTypes")
        if len(set(types)) != len(types):
            raise _bad("'eventTypes' must be unique.")
        status = body.get("status") or "ACTIVE"
        _enum(status, SUBSCRIPTION_STATUSES, "status")
        headers = body.get("customHeaders") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise _bad("'customHeaders' must be an object of strings.")
        auth = body.get("endpointAuth") or {}
        if not isinstance(auth, dict):
            raise _bad("'endpointAuth' must be an object.")
        auth_type = auth.get("type") or "NONE"
        _enum(auth_type, ENDPOINT_AUTH_TYPES, "endpointAuth.type")
        creds = auth.get("credentials") or {}
        if not isinstance(creds, dict):
            raise _bad("'endpointAuth.credentials' must be an object.")
        if auth_type == "BASIC" and not isinstance(creds.get("username"), str):
            raise _bad("BASIC endpointAuth needs credentials.username.")
        return {
            "endpoint_url": url,
            "event_types": list(types),
            "status": status,
            "custom_headers": dict(headers),
            "auth_type": auth_type,
            "auth_username": creds.get("username"),
            "auth_password": creds.get("password"),
        }

    def _own_subscription(self, cred: Credential, subscription_id: str) -> Subscription:
        sub = self._subscriptions.get(subscription_id)
        if sub is None or sub.owner_id != cred.id or sub.deleted_at is not None:
            raise ApiError(404, "SUBSCRIPTION_NOT_FOUND", "Subscription not found.")
        return sub

    def _activity(self, sub: Subscription, cred: Credential, operation: str, text: str) -> None:
        sub.activities.append(
            {
                "id": self._new_id(),
                "subscriptionId": sub.id,
                "operationType": operation,
                "actorUrn": cred.actor_urn,
                "description": text,
                "createdAt": iso(self.clock.now()),
            }
        )

    def api_list_subscriptions(self, cred: Credential, query: dict[str, list[str]]) -> dict:
        status = (query.get("status") or [None])[0]
        wanted: set[str] = set()
        for raw in query.get("event_types", []) + query.get("event_types[]", []):
            wanted.update(v for v in raw.split(",") if v)
        with self._lock:
            # Any spelling of the created event finds a subscription to it.
            spelling = self._spelling()
            wanted = set(variants.shown_event_types(wanted, spelling))
            rows = [
                s
                for s in self._subscriptions.values()
                if s.owner_id == cred.id
                and s.deleted_at is None
                and (status is None or s.status == status)
                and (
                    not wanted or wanted & set(variants.shown_event_types(s.event_types, spelling))
                )
            ]
            rows = self._ordered(rows, key=lambda s: s.seq)
            page, info = self._page(rows, query, {"createdAt": lambda s: s.created_at})
            return {"data": [s.to_api(self._spelling()) for s in page], "pagination": info}

    def api_create_subscription(self, cred: Credential, body: Any) -> dict:
        fields = self._parse_subscription(body)
        with self._lock:
            now = self.clock.now()
            sub = Subscription(
                id=self._new_id(),
                owner_id=cred.id,
                secret=new_secret(self._rng),
                created_at=now,
                updated_at=now,
                seq=self._next_seq(),
                **fields,
            )
            self._subscriptions[sub.id] = sub
            self._activity(sub, cred, "CREATE", "Subscription created")
            return {"data": sub.to_api(self._spelling())}

    def api_get_subscription(self, cred: Credential, subscription_id: str) -> dict:
        with self._lock:
            sub = self._own_subscription(cred, subscription_id)
            return {"data": sub.to_api(self._spelling())}

    def api_update_subscription(self, cred: Credential, subscription_id: str, body: Any) -> dict:
        fields = self._parse_subscription(body)
        with self._lock:
            sub = self._own_subscription(cred, subscription_id)
            for name, value in fields.items():
                setattr(sub, name, value)
            sub.updated_at = self.clock.now()
            self._activity(sub, cred, "UPDATE", "Subscription updated")
            return {"data": sub.to_api(self._spelling())}

    def api_delete_subscription(self, cred: Credential, subscription_id: str) -> None:
        with self._lock:
            sub = self._own_subscription(cred, subscription_id)
            sub.deleted_at = self.clock.now()
            sub.deleted_by = cred.actor_urn
            sub.updated_at = sub.deleted_at
            self._activity(sub, cred, "DELETE", "Subscription deleted")

    def api_subscription_secret(self, cred: Credential, subscription_id: str) -> dict:
        with self._lock:
            return {"data": {"secretKey": self._own_subscription(cred, subscription_id).secret}}

    def api_subscription_activities(
        self, cred: Credential, subscription_id: str, query: dict[str, list[str]]
    ) -> dict:
        with self._lock:
            sub = self._own_subscription(cred, subscription_id)
            wanted: set[str] = set()
            for raw in query.get("operation_types", []):
                wanted.update(v for v in raw.split(",") if v)
            rows = [a for a in sub.activities if not wanted or a["operationType"] in wanted]
            page, info = self._page(rows, query)
            return {"data": page, "pagination": info}


def _row_id(row: Any) -> str:
    if isinstance(row, tuple):
        return "/".join(_row_id(r) for r in row)
    for attr in ("id", "accounting_entry_id"):
        if hasattr(row, attr):
            return str(getattr(row, attr))
    return str(row)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
