"""The Pleo client: everything that speaks HTTP to Pleo, and no Django model.

``enums`` (Pleo's values and how we read them), ``errors`` (what a call can raise), ``resources``
(parsed answers and request bodies), ``connection`` (configuration, auth, sessions), ``transport``
(the retry and idempotency rules, ``_request``), ``client`` (the endpoints, ``PleoClient``);
``hosts`` (the allow-list of Pleo hosts), ``oauth`` (tokens), ``openapi``/``contract`` (Pleo's
schemas and the live contract check). The public names are re-exported here: import from
``exports.pleo``.
"""

from exports.pleo import errors
from exports.pleo.client import MAX_PAGES, PleoClient
from exports.pleo.connection import ApiKeyAuth, BearerAuth, ClientConfig, shared_session
from exports.pleo.enums import (
    EXPIRED_JOB_STATUS,
    TERMINAL_JOB_STATUSES,
    UNFINISHED_JOB_STATUSES,
    ErrorType,
    ItemFailureReasonType,
    ItemStatus,
    JobEvent,
    JobFailureReasonType,
    JobStatus,
    SubscriptionStatus,
    WebhookEventType,
    error_type_is,
)
from exports.pleo.errors import *  # noqa: F403  (what a call can raise: errors.__all__)
from exports.pleo.resources import (
    ExportItem,
    ExportJob,
    ExportJobItem,
    ItemUpdate,
    ItemUpdateError,
    ItemUpdateResult,
    Subscription,
)

__all__ = [
    "ApiKeyAuth",
    "BearerAuth",
    "ClientConfig",
    "ErrorType",
    "ExportItem",
    "EXPIRED_JOB_STATUS",
    "ExportJob",
    "ExportJobItem",
    "ItemFailureReasonType",
    "ItemStatus",
    "ItemUpdate",
    "ItemUpdateError",
    "ItemUpdateResult",
    "JobEvent",
    "JobFailureReasonType",
    "JobStatus",
    "MAX_PAGES",
    "PleoClient",
    "Subscription",
    "SubscriptionStatus",
    "TERMINAL_JOB_STATUSES",
    "UNFINISHED_JOB_STATUSES",
    "WebhookEventType",
    "error_type_is",
    "shared_session",
]
__all__ += errors.__all__
