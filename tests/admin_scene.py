"""A populated admin for the permission matrix and the company-scoping tests.

Two companies are inside the scoped user's scope (``Alpha``, and ``Charlie`` whose credential it
shares with ``OUTSIDER Delta``), two outside (``OUTSIDER Bravo``, ``OUTSIDER Delta``). Every row
tied to an outside company carries ``OUTSIDER`` in what a page would show (names, messages,
webhook ids, descriptions, the bytes of its receipt), so one word tells whether a page or a
download leaked it. Every credential holds every kind of secret (API key, OAuth client secret,
access and refresh token, two webhook signing secrets), all registered with
``tests.secrets_registry``.

Users: ``root`` (superuser); ``editor`` (every add/change/delete/view permission and
``view_all_companies``, none of the named permissions: check_now, manage_webhooks, adopt,
download_receipt, export_audit_pack);
``viewer`` (every view permission and ``view_all_companies``); ``scoped`` (every permission,
named ones too, but not ``view_all_companies``; limited through a group's membership to Alpha and
Charlie).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth.models import Group, Permission, User

from exports import audit, clock
from exports.models import (
    AuditEntry,
    Company,
    CompanyMembership,
    Credential,
    ExportItemRecord,
    ExportJob,
    JournalEntry,
    JournalLine,
    ManualBooking,
    Trigger,
    WebhookDelivery,
    WorkerHeartbeat,
    XeroAccount,
    XeroConnection,
    XeroMapping,
)
from exports.services.companies import webhook_endpoint_add_secret, webhook_endpoint_ensure
from tests import secrets_registry
from tests.factories import make_audit, make_job, make_receipt

OUTSIDER = "OUTSIDER"
NAMED_PERMISSIONS = (
    "check_now",
    "manage_webhooks",
    "adopt_exportjob",
    "view_all_companies",
    "settle_item",
    "download_receipt",
    "export_audit_pack",
    "connect_xero",
)


@dataclass
class Scene:
    users: dict[str, User]
    companies: dict[str, Company]
    credentials: dict[str, Credential]
    secrets: list[str] = field(default_factory=list)
    inside: list[Company] = field(default_factory=list)
    outside: list[Company] = field(default_factory=list)


def _secret(prefix: str) -> str:
    return secrets_registry.register(f"{prefix}{secrets.token_urlsafe(24)}")


def credential_with_every_secret(name: str, found: list[str]) -> Credential:
    values = [_secret(p) for p in ("pk_live_", "ocs_", "oat_", "ort_")]
    found.extend(values)
    credential = Credential(
        name=name,
        kind=Credential.Kind.OAUTH,
        oauth_client_id=f"client-{uuid.uuid4().hex[:8]}",
        access_token_expires_at=clock.now() + timedelta(hours=1),
    )
    credential.api_key, credential.oauth_client_secret = values[0], values[1]
    credential.access_token, credential.refresh_token = values[2], values[3]
    credential.save()
    endpoint = webhook_endpoint_ensure(credential=credential)
    for _ in range(2):  # two signing secrets, as during a rotation
        secret = _secret("whsec_")
        found.append(secret)
        webhook_endpoint_add_secret(endpoint=endpoint, secret=secret, subscription_id="sub_1")
    return credential


def _xero_rows(company: Company, label: str, found: list[str]) -> None:
    """A Xero connection with both tokens, a synced account and a mapping."""
    tokens = [_secret("xat_"), _secret("xrt_")]
    found.extend(tokens)
    connection = XeroConnection(
        company=company, tenant_id=uuid.uuid4(), tenant_name=f"{label} organisation"
    )
    connection.access_token, connection.refresh_token = tokens
    connection.save()
    XeroAccount.objects.create(
        connection=connection, account_id=uuid.uuid4(), code="6100", name=f"{label} account"
    )
    XeroMapping.objects.create(
        company=company, kind="account", pleo_code=f"{label} code", xero_code="6100"
    )


def _company_rows(company: Company, label: str) -> None:
    now = clock.now()
    job = make_job(
        company,
        status=ExportJob.Status.IN_PROGRESS,
        claim=ExportJob.Claim.OURS,
        created_at=now - timedelta(minutes=5),
        failure_reason=f"{label} job failure",
    )
    make_audit(
        company, "error", f"{label} audit message", outcome=AuditEntry.Outcome.ERROR, export_job=job
    )
    WebhookDelivery.objects.create(
        endpoint=company.credential.webhook_endpoint,
        company=company,
        webhook_id=f"msg_{label}_{uuid.uuid4().hex[:6]}",
        webhook_timestamp=now,
        event_type="v1.export-job.created",
        body='{"eventType": "v1.export-job.created"}',
        received_at=now,
        state=WebhookDelivery.State.FAILED,
    )
    item = ExportItemRecord.objects.create(
        export_job=job,
        accounting_entry_id=uuid.uuid4(),
        idempotency_key=uuid.uuid4().hex,
        adapter="journal",
        state=ExportItemRecord.State.BOOKED,
        failure_reason=f"{label} item note",
    )
    ManualBooking.objects.create(
        company=company,
        accounting_entry_id=item.accounting_entry_id,
        reference=f"{label} voucher",
        item_record=item,
        booked_by_name=f"{label} bookkeeper",
        booked_at=now,
    )
    entry = JournalEntry.objects.create(
        company=company,
        export_job=job,
        accounting_entry_id=item.accounting_entry_id,
        idempotency_key=uuid.uuid4().hex,
        date=now.date(),
        currency="DKK",
        amount=12500,
        description=f"{label} lunch",
        vendor_name=f"{label} vendor",
        created_at=now,
    )
    make_receipt(item, f"%PDF-1.4 {label} receipt".encode())
    for position, (debit, credit) in enumerate(((12500, 0), (0, 12500)), start=1):
        JournalLine.objects.create(
            entry=entry,
            position=position,
            kind="expense" if debit else "contra",
            account_code=f"40{position}0",
            account_name=f"{label} account",
            debit=debit,
            credit=credit,
        )


def _django_q_rows() -> None:
    from django_q.models import OrmQ, Schedule, Task
    from django_q.signing import SignedPackage

    now = clock.now()
    for success in (True, False):
        Task.objects.create(
            id=uuid.uuid4().hex,
            name=f"task-{success}",
            func="exports.tasks.check_company",
            args=(1, "schedule", False),
            kwargs={},
            result="done" if success else "Traceback: boom",
            started=now,
            stopped=now,
            success=success,
        )
    Schedule.objects.create(name="poll", func="exports.tasks.poll_tick", minutes=1)
    OrmQ.objects.create(
        key="pleo-export-bridge",
        payload=SignedPackage.dumps(
            {"id": uuid.uuid4().hex, "name": "queued", "func": "exports.tasks.check_company"}
        ),
    )


def _user(name: str, *, superuser=False, codenames=None) -> User:
    if superuser:
        return User.objects.create_superuser(name, f"{name}@example.com", None)
    user = User.objects.create_user(name, f"{name}@example.com", None, is_staff=True)
    if codenames is not None:
        user.user_permissions.add(*codenames)
    return user


def build_scene() -> Scene:
    found: list[str] = []
    own = credential_with_every_secret("Alpha credential", found)
    foreign = credential_with_every_secret(f"{OUTSIDER} Bravo credential", found)
    shared = credential_with_every_secret("Shared organisation credential", found)
    companies = {
        "alpha": Company.objects.create(name="Alpha", pleo_company_id=uuid.uuid4(), credential=own),
        "bravo": Company.objects.create(
            name=f"{OUTSIDER} Bravo", pleo_company_id=uuid.uuid4(), credential=foreign
        ),
        "charlie": Company.objects.create(
            name="Charlie", pleo_company_id=uuid.uuid4(), credential=shared
        ),
        "delta": Company.objects.create(
            name=f"{OUTSIDER} Delta", pleo_company_id=uuid.uuid4(), credential=shared
        ),
    }
    for key, company in companies.items():
        _company_rows(company, OUTSIDER if key in ("bravo", "delta") else company.name)
        _xero_rows(company, OUTSIDER if key in ("bravo", "delta") else company.name, found)
    audit.record(
        company=None, trigger=Trigger.WEBHOOK, step="unrouted", message="no company", run_id=None
    )
    WorkerHeartbeat.objects.create(
        name="worker-1", started_at=clock.now(), last_seen_at=clock.now()
    )
    _django_q_rows()

    every = Permission.objects.all()
    defaults = every.exclude(codename__in=NAMED_PERMISSIONS)
    view_all = Permission.objects.get(codename="view_all_companies")
    users = {
        "superuser": _user("root", superuser=True),
        "editor": _user("editor", codenames=[*defaults, view_all]),
        "viewer": _user(
            "viewer", codenames=[*every.filter(codename__startswith="view_"), view_all]
        ),
        "scoped": _user("scoped", codenames=list(every.exclude(pk=view_all.pk))),
    }
    bookkeepers = Group.objects.create(name="Bookkeepers of Alpha and Charlie")
    users["scoped"].groups.add(bookkeepers)
    membership = CompanyMembership.objects.create(group=bookkeepers)
    membership.companies.add(companies["alpha"], companies["charlie"])
    return Scene(
        users=users,
        companies=companies,
        credentials={"own": own, "foreign": foreign, "shared": shared},
        secrets=found,
        inside=[companies["alpha"], companies["charlie"]],
        outside=[companies["bravo"], companies["delta"]],
    )
