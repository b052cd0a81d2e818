"""Admin actions shared by several admins: enqueueing company checks ("Check now")."""

from __future__ import annotations

from django.contrib import messages
from django.utils.html import format_html

from exports.models import Trigger
from exports.selectors.live_status import check_now_follow_link
from exports.services.dispatch import EnqueueFailed, company_check_enqueue


def enqueue_checks(modeladmin, request, companies, *, recover: bool) -> None:
    """Only enqueue: no Pleo call happens in the admin request."""
    queued = already = inactive = 0
    try:
        for company in companies:
            if not company.active:
                inactive += 1
            elif company_check_enqueue(
                company_id=company.pk, trigger=Trigger.MANUAL, recover=recover
            ):
                queued += 1
            else:
                already += 1
    except EnqueueFailed as exc:
        modeladmin.message_user(
            request, f"The worker queue refused the check: {exc}", messages.ERROR
        )
        return
    parts = [f"{queued} {'company' if queued == 1 else 'companies'} queued for a check"]
    if recover:
        parts[0] += " (recovery mode)"
    if already:
        parts.append(f"{already} already queued")
    if inactive:
        parts.append(f"{inactive} inactive, skipped")
    text = "; ".join(parts) + "."
    if len(companies) == 1 and queued + already:
        text = format_html("{} {}.", text, check_now_follow_link(company=companies[0]))
    modeladmin.message_user(request, text, messages.SUCCESS)
