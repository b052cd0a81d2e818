"""Small model factories for tests."""

import uuid

from exports import audit, clock
from exports.models import AuditEntry, Company, Credential, ExportJob, Trigger
from exports.services.companies import webhook_endpoint_ensure
from tests import secrets_registry


def make_staff(name: str = "clerk", *codenames: str):
    """A staff user (no superuser) holding the permissions named ``codenames``."""
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user(name, f"{name}@example.com", None, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def make_credential(
    *, name="Acme credential", api_key=None, api_base_url="", **extra
) -> Credential:
    credential = Credential(
        name=name, kind=Credential.Kind.API_KEY, api_base_url=api_base_url, **extra
    )
    credential.api_key = secrets_registry.register(api_key or secrets_registry.new_api_key())
    credential.save()
    webhook_endpoint_ensure(credential=credential)
    return credential


def make_company(*, name="Acme", pleo_company_id=None, credential=None, **extra) -> Company:
    credential = credential or make_credential(name=f"{name} credential")
    return Company.objects.create(
        name=name,
        pleo_company_id=pleo_company_id or uuid.uuid4(),
        credential=credential,
        **extra,
    )


def make_sandbox_company(sandbox, *, name="Acme", currency="DKK") -> tuple:
    """A company in the Pleo sandbox with its own API key, and the same company here, its
    credential pointing at the sandbox. Returns ``(remote, company)``."""
    remote, _key, company = make_sandbox_company_and_key(sandbox, name=name, currency=currency)
    return remote, company


def make_sandbox_company_and_key(
    sandbox, *, name="Acme", remote_name=None, currency="DKK", **extra
) -> tuple:
    """As :func:`make_sandbox_company` (the sandbox's company named ``remote_name``, else
    ``name``; ``extra`` for our company's fields), and the sandbox's API key object too.
    Returns ``(remote, key, company)``."""
    remote = sandbox.state.add_company(remote_name or name, currency=currency)
    key = sandbox.state.add_api_key(remote.id)
    credential = make_credential(
        name=f"{name} credential", api_key=key.key, api_base_url=sandbox.url
    )
    company = make_company(
        name=name, pleo_company_id=uuid.UUID(remote.id), credential=credential, **extra
    )
    return remote, key, company


def make_job(company, **fields) -> ExportJob:
    """An export job of ``company`` as the schedule saw it: a fresh Pleo id, ``pending``, created
    now, Pleo's one-hour expiry. ``fields`` set or override any other field."""
    return ExportJob.objects.create(
        **{
            "pleo_job_id": uuid.uuid4(),
            "company": company,
            "status": ExportJob.Status.PENDING,
            "created_at": clock.now(),
            "expires_in": 3600,
            "seen_via": Trigger.SCHEDULE,
            **fields,
        }
    )


def make_audit(
    company, step, message="", *, trigger=Trigger.SCHEDULE, run_id=None, **fields
) -> AuditEntry:
    """An audit entry of ``company`` written as the product writes one (``exports.audit.record``):
    by the schedule and outside a run unless ``trigger``/``run_id`` say otherwise. ``fields``:
    ``export_job``, ``outcome``, ``http``."""
    return audit.record(
        company=company, trigger=trigger, step=step, message=message, run_id=run_id, **fields
    )


def make_receipt(record, content: bytes, *, position=0, content_type="application/pdf"):
    """A receipt of the item ``record``, its bytes stored in the receipts storage under their
    content address (as the fetching stores them)."""
    import hashlib

    from django.core.files.base import ContentFile

    from exports import clock
    from exports.models import Receipt
    from exports.receipts.files import receipts_storage

    job = record.export_job
    sha = hashlib.sha256(content).hexdigest()
    name = f"{job.company_id}/{sha}"
    storage = receipts_storage()
    if not storage.exists(name):
        storage.save(name, ContentFile(content))
    return Receipt.objects.create(
        item_record=record,
        company_id=job.company_id,
        export_job=job,
        accounting_entry_id=record.accounting_entry_id,
        position=position,
        declared_type=content_type,
        declared_size=len(content),
        content_type=content_type,
        size=len(content),
        sha256=sha,
        storage_name=name,
        source_host="files.pleo.test",
        source_path=f"/receipts/{sha[:8]}",
        fetched_at=clock.now(),
    )
