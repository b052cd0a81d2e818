"""Pleo's vocabulary and objects as the sandbox keeps them: statuses (the tuples the checks use,
from the enums of :mod:`pleo_sandbox.vocabulary`), reasons, scopes, messages, and the entities
(companies, organisations, credentials, jobs, items, subscriptions).

Plain data: no locking, no clock, no behaviour beyond rendering (``to_api``/``to_dict``: keys and
values by :mod:`pleo_sandbox.rendering`). The store (:mod:`pleo_sandbox.store`) holds them; the
parts of the domain change them under its lock.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pleo_sandbox import variants
from pleo_sandbox.clock import iso
from pleo_sandbox.data import CompanyProfile
from pleo_sandbox.rendering import camel_fields
from pleo_sandbox.vocabulary import ItemStatus, JobEvent, JobStatus, SubscriptionStatus

# The v3 statuses (``expired`` only with the ``expired_status`` switch: variants.job_statuses).
JOB_STATUSES = tuple(s for s in JobStatus if s is not JobStatus.EXPIRED)
UNFINISHED_JOB_STATUSES = (JobStatus.PENDING, JobStatus.IN_PROGRESS)
# The events an integration posts (``created``/``expired`` are only recorded by Pleo's side).
JOB_EVENTS = (
    JobEvent.STARTED,
    JobEvent.FAILED,
    JobEvent.COMPLETED,
    JobEvent.COMPLETED_WITH_ERRORS,
)
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
ITEM_STATUSES = tuple(ItemStatus)
UNFINISHED_ITEM_STATUSES = (ItemStatus.PENDING, ItemStatus.IN_PROGRESS)
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
    (JobStatus.PENDING, JobEvent.STARTED): JobStatus.IN_PROGRESS,
    (JobStatus.IN_PROGRESS, JobEvent.FAILED): JobStatus.FAILED,
    (JobStatus.IN_PROGRESS, JobEvent.COMPLETED): JobStatus.COMPLETED,
    (JobStatus.IN_PROGRESS, JobEvent.COMPLETED_WITH_ERRORS): JobStatus.COMPLETED_WITH_ERRORS,
}
FINAL_EVENTS = (JobEvent.FAILED, JobEvent.COMPLETED, JobEvent.COMPLETED_WITH_ERRORS)
MAX_ITEMS_PER_UPDATE = 100
# What an item update sets (UpdateExportJobItemV3) and ExportJobItemV3 shows after the ids.
ITEM_OUTCOME_FIELDS = (
    "status",
    "exported_at",
    "external_id",
    "external_url",
    "failure_reason",
    "failure_reason_type",
)
SCOPES = ("export-jobs:read", "export-jobs:write", "export-items:read")
EVENT_TYPES = variants.subscribable_event_types()
JOB_CREATED_EVENT = variants.JOB_CREATED_SPELLINGS[0]
SUBSCRIPTION_STATUSES = tuple(SubscriptionStatus)
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


def scope_set(scopes: Iterable[str] | None) -> frozenset[str]:
    """``scopes`` checked against :data:`SCOPES` (None: every scope); ValueError if unknown."""
    checked = frozenset(scopes) if scopes is not None else frozenset(SCOPES)
    unknown = checked - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes {sorted(unknown)}")
    return checked


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
        return camel_fields(
            self, "id", "name", "currency", "organisation_id", "contra_accounts_configured"
        )


@dataclass
class Organisation:
    id: str
    name: str
    company_ids: list[str]

    def to_dict(self) -> dict:
        return camel_fields(self, "id", "name", "company_ids")


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
        shown = camel_fields(
            self,
            "id",
            "kind",
            "secret",
            "company_ids",
            "organisation_id",
            "scopes",
            "label",
            "revoked",
            "expires_at",
            "identity",
        )
        return shown | {"authorization": self.auth_header()["Authorization"]}


@dataclass
class JobItem:
    accounting_entry_id: str
    job_id: str
    kind: str
    status: ItemStatus = ItemStatus.PENDING
    exported_at: str | None = None
    external_id: str | None = None
    external_url: str | None = None
    failure_reason: str | None = None
    failure_reason_type: str | None = None

    def to_api(self) -> dict:
        """``ExportJobItemV3``."""
        return (
            camel_fields(self, "accounting_entry_id")
            | {"exportJobId": self.job_id}
            | camel_fields(self, *ITEM_OUTCOME_FIELDS)
        )


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
    status: JobStatus = JobStatus.PENDING
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
        """``ExportJobV3``."""
        return (
            camel_fields(
                self,
                "id",
                "company_id",
                "status",
                "created_at",
                "created_by",
                "expires_in",
                "is_interactive",
            )
            | {"numberOfItems": len(self.items)}
            | camel_fields(
                self,
                "vendor_based_bookkeeping",
                "started_at",
                "last_updated_at",
                "completed_at",
                "expired_at",
                "failure_reason",
                "failure_reason_type",
            )
        )


@dataclass
class Subscription:
    id: str
    owner_id: str
    endpoint_url: str
    event_types: list[str]
    status: SubscriptionStatus
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
            out |= camel_fields(self, "deleted_at", "deleted_by")
        return out
