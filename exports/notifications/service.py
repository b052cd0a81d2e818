"""Notifications: request (record and queue), dedupe window, digest, delivery with retries.

:func:`notification_request` is what the rest of the product calls. Inside the caller's
transaction it renders the message and records it in a savepoint; the worker task that sends it
is queued when that transaction commits (a rolled-back event notifies nobody). Any failure is
logged and swallowed: notifying never affects an export.

Dedupe: at most one message per kind and dedupe key (a company, also for its Xero connection's
re-authorisation; a credential for a Pleo credential's re-authorisation; the service for health) per
``NOTIFY_WINDOW_SECONDS`` on the product's clock (:mod:`exports.clock`), decided by a
compare-and-set on :class:`NotificationThrottle`, so concurrent workers send one. An event within
the window is recorded ``suppressed`` and listed in the digest of the next message of its kind and
key: the next event after the window, or the digest the worker's maintenance sends once the window
has passed. A condition (blocked elsewhere, service unhealthy) observed again within the window
records nothing.

Delivery (:func:`notification_deliver`, in the worker; ``notify_health`` calls it directly):
claimed by a compare-and-set (``queued``/``retrying`` → ``sending``), so one process sends it; each
email address and the webhook are marked done as they succeed, and a later attempt sends only
what is left. A failed attempt is retried by the maintenance task after a backoff (and never
before the webhook's ``Retry-After``), at most ``MAX_ATTEMPTS`` times.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django_q.tasks import async_task

from exports import clock, crypto
from exports.models import AuditEntry, AuditStep, Company, Credential, ExportJob, XeroConnection
from exports.notifications import channels
from exports.notifications.kinds import CONDITIONS, Kind
from exports.notifications.models import Notification, NotificationThrottle
from exports.notifications.recipients import split_addresses
from exports.notifications.render import PREFIX, JobEnd, Message, admin_url, render, when
from exports.redaction import MIN_SCRUBBED_LENGTH, without_secrets

logger = logging.getLogger(__name__)

TASK = "exports.notifications.tasks.send_notification"
MAX_ATTEMPTS = 5
# Wait after attempt n (1-based) before the next: 1 min, 5 min, 15 min, 1 h.
BACKOFF_SECONDS = (60, 300, 900, 3600)
# A queued notification no worker has picked up by then is queued again (a lost task).
REQUEUE_AFTER = timedelta(minutes=10)
# A notification left "sending" this long (its worker died) is attempted again.
SENDING_TIMEOUT = timedelta(minutes=5)
# A company blocked by a job owned elsewhere is told after this long.
BLOCKED_AFTER = timedelta(hours=1)
DIGEST_LISTED = 20
REQUEUE_BATCH = 100

Status = Notification.Status
_OURS = (ExportJob.Claim.OURS, ExportJob.Claim.STARTING, ExportJob.Claim.ADOPTED)


def window() -> timedelta:
    return timedelta(seconds=float(settings.NOTIFY_WINDOW_SECONDS))


def _instance(model, value):
    """An instance as given (the caller's fresh row), or read by primary key."""
    if value is None or isinstance(value, model):
        return value
    return model.objects.get(pk=value)


def _job(value) -> ExportJob | None:
    if value is None or isinstance(value, ExportJob):
        return value
    return ExportJob.objects.select_related("company__credential").get(pk=value)


def _company(value) -> Company | None:
    if value is None or isinstance(value, Company):
        return value
    return Company.objects.select_related("credential").get(pk=value)


# --- request ------------------------------------------------------------------------------------


def notification_request(
    *,
    kind: Kind | str,
    company: Company | int | None = None,
    credential: Credential | int | None = None,
    job: ExportJob | int | None = None,
    facts: dict | None = None,
) -> Notification | None:
    """Tell the people concerned (see the module docstring). Never raises.

    ``company``, ``credential`` and ``job`` may be instances or primary keys; the company and
    credential default to the job's. Returns the recorded row (None when nothing was recorded).
    """
    try:
        if kind == Kind.BLOCKED_ELSEWHERE and not _blocked_long(_job(job)):
            return None  # the common case on every poll of a blocked company: no transaction
        with transaction.atomic():  # a savepoint: a failure here leaves the caller's work intact
            return notification_record(
                kind=kind, company=company, credential=credential, job=job, facts=facts
            )
    except Exception:
        logger.exception("Could not record a %s notification; nothing else is affected", kind)
        return None


def notification_request_job_outcome(
    *, company: Company | int, job: ExportJob, cause: JobEnd | str
) -> Notification | None:
    """A job of ours ended: failed or expired (or vanished) → ``job_failed``; completed with
    errors → ``items_failed``; completed → nothing. Never raises."""
    status = getattr(job, "status", "")
    if cause == JobEnd.NOT_FOUND:
        kind = Kind.JOB_FAILED
    elif status in (
        ExportJob.Status.COMPLETED,
        ExportJob.Status.PENDING,
        ExportJob.Status.IN_PROGRESS,
    ):
        return None
    elif status == ExportJob.Status.COMPLETED_WITH_ERRORS:
        kind = Kind.ITEMS_FAILED
    else:  # failed, expired, or any other final status Pleo may add
        kind = Kind.JOB_FAILED
    return notification_request(kind=kind, company=company, job=job, facts={"cause": str(cause)})


def notification_record(
    *,
    kind: Kind | str,
    company: Company | int | None = None,
    credential: Credential | int | None = None,
    job: ExportJob | int | None = None,
    facts: dict | None = None,
    enqueue: bool = True,
) -> Notification | None:
    """Render, dedupe and record one notification; queue it on commit unless ``enqueue`` is
    False (``notify_health`` delivers it itself). May raise: callers wrap it."""
    kind = Kind(kind)
    facts = dict(facts or {})
    now = clock.now()
    job_row = _job(job)
    company_row = _company(company) or (job_row.company if job_row else None)
    credential_row = _instance(Credential, credential) or (
        company_row.credential if company_row else None
    )
    if kind == Kind.BLOCKED_ELSEWHERE:
        since = blocked_since(job_row)
        if since is None or now - since < BLOCKED_AFTER:
            return None
        facts.update(since=since.isoformat(), hours=int((now - since).total_seconds() // 3600))
    key = dedupe_key(kind, company=company_row, credential=credential_row)
    if kind in CONDITIONS and _throttled(kind, key, now):
        return None

    message = render(kind, company=company_row, credential=credential_row, job=job_row, facts=facts)
    xero = company_row if kind == Kind.XERO_REAUTHORISATION else None
    message = scrub(message, credential_row, xero_company=xero)
    fields = {
        "kind": kind,
        "dedupe_key": key,
        "company": company_row,
        "credential": credential_row if kind == Kind.REAUTHORISATION else None,
        "export_job": job_row,
        "pleo_job_id": job_row.pleo_job_id if job_row else None,
        "subject": message.subject,
        "summary": message.summary,
        "text": message.text,
        "link": message.link,
        "created_at": now,
    }
    if not _claim(kind, key, now):
        if kind in CONDITIONS:
            return None
        return Notification.objects.create(status=Status.SUPPRESSED, **fields)
    recipients = recipients_for(kind, company=company_row, credential=credential_row)
    host = channels.webhook_host() if channels.webhook_configured() else ""
    notification = Notification.objects.create(
        status=Status.QUEUED if recipients or host else Status.NO_CHANNEL,
        recipients=recipients,
        webhook_host=host,
        next_attempt_at=now + REQUEUE_AFTER,
        **fields,
    )
    _attach_digest(notification)
    if notification.status == Status.QUEUED and enqueue:
        transaction.on_commit(lambda: _enqueue(notification.pk))
    logger.info(
        "Notification %s recorded (%s, %s): %s",
        notification.pk,
        kind,
        notification.status,
        notification.subject,
    )
    return notification


def dedupe_key(kind: Kind, *, company: Company | None, credential: Credential | None) -> str:
    if kind == Kind.SERVICE_UNHEALTHY:
        return "service"
    if kind == Kind.REAUTHORISATION:
        return f"credential:{credential.pk}"
    return f"company:{company.pk}"


def recipients_for(
    kind: Kind, *, company: Company | None, credential: Credential | None
) -> list[str]:
    """The integrator's addresses, and the bookkeepers' of the company (or, for a credential, of
    every active company that uses it: one organisation's companies)."""
    wanted = [settings.NOTIFY_EMAILS]
    if kind == Kind.REAUTHORISATION and credential is not None:
        wanted += Company.objects.filter(credential=credential, active=True).values_list(
            "notify_emails", flat=True
        )
    elif kind != Kind.SERVICE_UNHEALTHY and company is not None:
        wanted.append(company.notify_emails)
    return split_addresses([address for part in wanted for address in split_addresses(part)])


def _blocked_long(job: ExportJob | None) -> bool:
    since = blocked_since(job)
    return since is not None and clock.now() - since >= BLOCKED_AFTER


def blocked_since(job: ExportJob | None) -> datetime | None:
    """Since when the job owned elsewhere has blocked its company (None: it does not)."""
    if job is None or job.claim != ExportJob.Claim.ELSEWHERE:
        return None
    if job.status != ExportJob.Status.IN_PROGRESS:
        return None
    if job.started_at is not None:
        return job.started_at
    return (
        AuditEntry.objects.filter(export_job=job, step=AuditStep.OWNED_ELSEWHERE)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )


def _secrets_of(credential: Credential | None, xero_company: Company | None = None) -> list[str]:
    values = [str(settings.NOTIFY_WEBHOOK_URL or ""), str(settings.XERO_CLIENT_SECRET or "")]
    connection = (
        XeroConnection.objects.filter(company=xero_company).first() if xero_company else None
    )
    if connection is not None:
        for name in ("access_token", "refresh_token"):
            try:
                values.append(getattr(connection, name))
            except (crypto.SecretDecryptionError, crypto.EncryptionKeysMissing):
                continue
    if credential is not None:
        for name in Credential.SECRET_FIELDS:
            try:
                values.append(getattr(credential, name))
            except (crypto.SecretDecryptionError, crypto.EncryptionKeysMissing):
                continue
        endpoint = getattr(credential, "webhook_endpoint", None) if credential.pk else None
        if endpoint is not None:
            try:
                values += [entry.get("secret", "") for entry in endpoint.secret_entries()]
            except (crypto.SecretDecryptionError, crypto.EncryptionKeysMissing, ValueError):
                pass
    return [value for value in values if value and len(value) >= MIN_SCRUBBED_LENGTH]


def scrub(
    message: Message, credential: Credential | None, *, xero_company: Company | None = None
) -> Message:
    """The last guard: no secret of the credential involved (nor the webhook URL, the Xero client
    secret, or the tokens of ``xero_company``'s Xero connection) in a message, whatever a reason
    text quoted."""
    secrets = _secrets_of(credential, xero_company)
    if not secrets:
        return message

    def clean(text: str) -> str:
        return without_secrets(text, secrets)

    return Message(
        subject=clean(message.subject),
        summary=clean(message.summary),
        text=clean(message.text),
        link=message.link,
    )


# --- the window ---------------------------------------------------------------------------------


def _throttle_key(kind: str, key: str) -> str:
    return f"{kind}:{key}"


def _throttled(kind: str, key: str, now: datetime) -> bool:
    return NotificationThrottle.objects.filter(
        key=_throttle_key(kind, key), last_sent_at__gt=now - window()
    ).exists()


def _claim(kind: str, key: str, now: datetime) -> bool:
    """Take the window for (kind, key): True for exactly one caller per window."""
    throttle_key = _throttle_key(kind, key)
    NotificationThrottle.objects.get_or_create(key=throttle_key)
    return bool(
        NotificationThrottle.objects.filter(key=throttle_key)
        .filter(Q(last_sent_at__isnull=True) | Q(last_sent_at__lte=now - window()))
        .update(last_sent_at=now)
    )


def _pending_digest(kind: str, key: str):
    return Notification.objects.filter(
        kind=kind, dedupe_key=key, status=Status.SUPPRESSED, digested_in__isnull=True
    )


def _digest_lines(kind: str, key: str) -> tuple[int, list[str]]:
    pending = _pending_digest(kind, key)
    count = pending.count()
    rows = pending.order_by("created_at", "id").values_list("created_at", "summary")
    lines = [f"- {when(created)}: {summary}" for created, summary in rows[:DIGEST_LISTED]]
    if count > DIGEST_LISTED:
        lines.append(f"- and {count - DIGEST_LISTED} more (see the notification log)")
    return count, lines


def _attach_digest(notification: Notification) -> int:
    """Append what was suppressed since the last message of this kind and key; mark it."""
    count, lines = _digest_lines(notification.kind, notification.dedupe_key)
    if not count:
        return 0
    notification.text += (
        f"\n\nAlso since the last message ({count} more within the hour, not sent one by one):\n"
        + "\n".join(lines)
    )
    notification.save(update_fields=["text"])
    _pending_digest(notification.kind, notification.dedupe_key).update(digested_in=notification)
    return count


def notification_flush_digests(now: datetime | None = None) -> int:
    """Send the suppressed notices whose window has passed with no new message to carry them.
    Returns how many digests were queued."""
    now = now or clock.now()
    keys = list(
        Notification.objects.filter(status=Status.SUPPRESSED, digested_in__isnull=True)
        .values_list("kind", "dedupe_key")
        .distinct()
    )
    queued = 0
    for kind, key in keys:
        with transaction.atomic():
            if _throttled(kind, key, now) or not _claim(kind, key, now):
                continue
            latest = _pending_digest(kind, key).order_by("-created_at", "-id").first()
            if latest is None:
                continue
            count = _pending_digest(kind, key).count()
            who = latest.company.name if latest.company else (latest.credential or "the service")
            recipients = recipients_for(
                Kind(kind), company=latest.company, credential=latest.credential
            )
            host = channels.webhook_host() if channels.webhook_configured() else ""
            digest = Notification.objects.create(
                kind=kind,
                dedupe_key=key,
                status=Status.QUEUED if recipients or host else Status.NO_CHANNEL,
                company=latest.company,
                credential=latest.credential,
                subject=f"{PREFIX}{who}: {count} more '{Kind(kind).label}' within the hour",
                summary=f"digest of {count}",
                text="",
                recipients=recipients,
                webhook_host=host,
                created_at=now,
                next_attempt_at=now + REQUEUE_AFTER,
            )
            digest.link = admin_url("admin:exports_notification_change", digest.pk)
            _, lines = _digest_lines(kind, key)
            digest.text = (
                f"{count} more notices of this kind came within the hour after the last message "
                f"and were not sent one by one:\n"
                + "\n".join(lines)
                + f"\n\nDetails: {digest.link}"
            )
            digest.save(update_fields=["link", "text"])
            _pending_digest(kind, key).update(digested_in=digest)
            if digest.status == Status.QUEUED:
                transaction.on_commit(lambda pk=digest.pk: _enqueue(pk))
                queued += 1
    return queued


# --- delivery -----------------------------------------------------------------------------------


def _enqueue(notification_id: int) -> None:
    try:
        async_task(
            TASK,
            notification_id,
            task_name=f"notification {notification_id}",
            group="notifications",
            save=False,
        )
    except Exception as exc:  # the broker's errors are not one family
        logger.warning(
            "Could not queue notification %s (%s); the worker's maintenance queues it again",
            notification_id,
            type(exc).__name__,
        )


def notification_deliver(*, notification_id: int) -> str:
    """Send what is left of one notification. Returns its status. Never raises."""
    try:
        return _deliver(notification_id)
    except Exception:
        logger.exception("Notification %s: delivery failed unexpectedly", notification_id)
        Notification.objects.filter(pk=notification_id, status=Status.SENDING).update(
            status=Status.RETRYING, next_attempt_at=clock.now() + timedelta(seconds=60)
        )
        return Status.RETRYING


def _deliver(notification_id: int) -> str:
    now = clock.now()
    claimed = Notification.objects.filter(
        pk=notification_id, status__in=[Status.QUEUED, Status.RETRYING]
    ).update(status=Status.SENDING, next_attempt_at=now + SENDING_TIMEOUT)
    if not claimed:
        return "not due"  # sent, being sent, or given up
    notification = Notification.objects.get(pk=notification_id)
    done = list(notification.delivered_to)
    errors: list[str] = []
    retry_after = None

    addresses = [a for a in notification.recipients if f"email:{a}" not in done]
    sent, email_errors = channels.send_emails(
        subject=notification.subject, text=notification.text, addresses=addresses
    )
    done += [f"email:{address}" for address in sent]
    errors += email_errors

    if notification.webhook_host and "webhook" not in done and channels.webhook_configured():
        try:
            channels.post_webhook(subject=notification.subject, text=notification.text)
        except channels.ChannelError as exc:
            errors.append(str(exc))
            retry_after = exc.retry_after
        except Exception as exc:
            errors.append(f"webhook ({channels.webhook_host()}): {type(exc).__name__}")
        else:
            done.append("webhook")

    attempts = notification.attempts + 1
    update = {"delivered_to": done, "attempts": attempts, "error": "; ".join(errors)[:2000]}
    if not errors:
        update.update(status=Status.SENT, sent_at=clock.now(), next_attempt_at=None)
    elif attempts >= MAX_ATTEMPTS:
        update.update(status=Status.FAILED, next_attempt_at=None)
    else:
        wait = BACKOFF_SECONDS[min(attempts, len(BACKOFF_SECONDS)) - 1]
        wait = max(wait, retry_after or 0)
        update.update(status=Status.RETRYING, next_attempt_at=clock.now() + timedelta(seconds=wait))
    Notification.objects.filter(pk=notification_id, status=Status.SENDING).update(**update)
    if errors:
        logger.warning(
            "Notification %s (%s) attempt %d: %s%s",
            notification_id,
            notification.kind,
            attempts,
            update["error"],
            "; will retry" if update["status"] == Status.RETRYING else "; gave up",
        )
    else:
        logger.info(
            "Notification %s (%s) sent: %s",
            notification_id,
            notification.kind,
            ", ".join(done) if len(done) <= 3 else f"{len(done)} channels",
        )
    return update["status"]


def notification_requeue_due(now: datetime | None = None) -> int:
    """Queue again what is due: retries, queued ones no worker picked up, stalled sends."""
    now = now or clock.now()
    due = list(
        Notification.objects.filter(
            status__in=[Status.QUEUED, Status.RETRYING, Status.SENDING], next_attempt_at__lte=now
        )
        .order_by("next_attempt_at")
        .values_list("pk", "status")[:REQUEUE_BATCH]
    )
    for pk, status in due:
        new_status = Status.RETRYING if status == Status.SENDING else status
        moved = Notification.objects.filter(pk=pk, status=status, next_attempt_at__lte=now).update(
            status=new_status, next_attempt_at=now + REQUEUE_AFTER
        )
        if moved:
            _enqueue(pk)
    return len(due)


def notifications_maintenance() -> None:
    """Every minute, from the worker's maintenance task. Never raises."""
    try:
        notification_requeue_due()
        notification_flush_digests()
    except Exception:
        logger.exception("Notification maintenance failed; trying again in a minute")
