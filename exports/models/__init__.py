"""The data model of pleo-export-bridge.

Companies, their Pleo credentials (secrets encrypted at rest), webhook endpoints, our mirror of
Pleo's export jobs, the append-only audit table, received webhook deliveries and worker heartbeats.
One module per concern; every model is importable from here (``from exports.models import X``).
Business logic lives in ``exports.services``; models hold data, constraints and tiny helpers.
"""

from exports.models.audit import AuditEntry, AuditQuerySet, AuditStep
from exports.models.budget import RequestBudget
from exports.models.companies import Company, CompanyMembership, Trigger
from exports.models.credentials import Credential, EncryptedSecret, WebhookEndpoint, secret_column
from exports.models.deliveries import WebhookDelivery, WorkerHeartbeat
from exports.models.jobs import ExportItemRecord, ExportJob
from exports.models.journal import JournalEntry, JournalLine

# Defined in their own packages, registered with the app here: notifications, the receipt
# archive's index (exports.receipts), rejected webhook requests counted (exports.rejections),
# items booked by hand (exports.settlement).
from exports.notifications.models import Notification, NotificationThrottle
from exports.receipts.models import Receipt
from exports.rejections.models import WebhookRejectionCount
from exports.settlement.models import ManualBooking

# A company's Xero connection, synced Xero data and code mapping (exports.xero.models).
from exports.xero.models import (
    XeroAccount,
    XeroBooking,
    XeroConnection,
    XeroContact,
    XeroMapping,
    XeroTaxRate,
    XeroTrackingOption,
)

__all__ = [
    "AuditEntry",
    "AuditQuerySet",
    "AuditStep",
    "Company",
    "CompanyMembership",
    "Credential",
    "EncryptedSecret",
    "ExportItemRecord",
    "ExportJob",
    "JournalEntry",
    "JournalLine",
    "ManualBooking",
    "Notification",
    "NotificationThrottle",
    "Receipt",
    "RequestBudget",
    "Trigger",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookRejectionCount",
    "WorkerHeartbeat",
    "XeroAccount",
    "XeroBooking",
    "XeroConnection",
    "XeroContact",
    "XeroMapping",
    "XeroTaxRate",
    "XeroTrackingOption",
    "secret_column",
]
