"""One company's check, guarded: whatever it raises becomes that company's ``failed`` outcome.

``check_exports`` and the worker's batch task run many companies one after the other. An
unexpected exception in one of them (a bug, a row no form would take today, a database error of
its own) must not stop the others: batches are ordered by id, so the same companies would starve
on every tick. The exception is recorded on the company (last check ``failed``, with the reason),
audited and logged with its traceback, every secret of the company's credential masked out of
both. ``KeyboardInterrupt`` and ``SystemExit`` (SIGTERM) still stop the whole run.
"""

from __future__ import annotations

import logging
import re
import traceback
import uuid
from collections.abc import Callable

from django.db import transaction

from exports import clock
from exports.models import Company
from exports.services.failing import company_check_failure_audit, job_failing_fields
from exports.services.runs import FlowResult, Outcome
from exports.services.start_flow import company_check_run

logger = logging.getLogger(__name__)

MAX_REASON = 1000
MASK = "[secret]"
# user:password@ inside any URL of a message (a DSN, a proxy URL).
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def company_check_guarded(
    *,
    company: Company,
    trigger: str,
    recover: bool = False,
    run_id: uuid.UUID | None = None,
    check: Callable[..., FlowResult] = company_check_run,
) -> FlowResult:
    """``check`` (:func:`company_check_run`; callers pass the one they import, so a test may
    stand in for it there) with any ``Exception`` turned into a recorded failed outcome."""
    run_id = run_id or uuid.uuid4()
    try:
        return check(company=company, trigger=trigger, recover=recover, run_id=run_id)
    except Exception as exc:
        return company_record_unexpected_failure(
            company=company, trigger=trigger, run_id=run_id, exc=exc
        )


def company_record_unexpected_failure(
    *, company: Company, trigger: str, run_id: uuid.UUID, exc: BaseException
) -> FlowResult:
    """Record ``exc`` as the company's failed check; never raises (the others must go on)."""
    secrets = _credential_secrets(company)
    reason = _masked(f"Unexpected error: {type(exc).__name__}: {_text(exc)}", secrets)
    reason = " ".join(reason.split())[:MAX_REASON]
    trace = _masked("".join(traceback.format_exception(exc)), secrets)
    logger.error("%s: check failed unexpectedly [run %s]: %s\n%s", company, run_id, reason, trace)
    try:
        with transaction.atomic():
            Company.objects.filter(pk=company.pk).update(
                last_check_at=clock.now(),
                last_check_outcome=Outcome.FAILED,
                last_check_error=reason,
                **job_failing_fields(company_id=company.pk, failing=True, error=reason),
            )
            company_check_failure_audit(
                company=company, trigger=trigger, run_id=run_id, error=reason
            )
    except Exception as record_exc:  # the database may be what failed: log, go on
        logger.error(
            "%s: the failure could not be recorded (%s)", company, type(record_exc).__name__
        )
    return FlowResult(company=company, outcome=Outcome.FAILED, run_id=run_id, error=reason)


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return "(the error's message could not be read)"


def _credential_secrets(company: Company) -> list[str]:
    """Every secret of the company's credential that can be read now (best effort: the error
    may be that they cannot), longest first so a secret containing another is masked whole."""
    found: list[str] = []
    try:
        credential = company.credential
    except Exception:
        return found
    for name in credential.SECRET_FIELDS:
        try:
            found.append(getattr(credential, name))
        except Exception:  # noqa: S112 (an unreadable secret cannot leak either)
            continue
    try:
        found.extend(entry["secret"] for entry in credential.webhook_endpoint.secret_entries())
    except Exception:  # noqa: S110 (no endpoint, or its secrets unreadable)
        pass
    return sorted({s for s in found if s and len(s) >= 4}, key=len, reverse=True)


def _masked(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return _URL_USERINFO.sub(f"{MASK}@", text)
