"""Reads of the rejected-webhook counts for the admin pages (scoped to the user's companies)."""

from __future__ import annotations

from exports.models import Credential, WebhookRejectionCount
from exports.rejections.counter import rejections_flush_if_due
from exports.selectors.company_access import queryset_for_user, user_sees_all_companies


def rejection_counts_for_credential(*, credential: Credential) -> list[WebhookRejectionCount]:
    """The counts of the credential's webhook endpoint (401, 413)."""
    rejections_flush_if_due()  # this process's own tally, if a minute has passed
    return list(WebhookRejectionCount.objects.filter(endpoint__credential=credential))


def rejection_counts_for_index(*, user) -> list[WebhookRejectionCount]:
    """What ``user`` may see: every endpoint's counts and the global 404 count for a user who
    sees all companies, the counts of their credentials' endpoints otherwise."""
    rejections_flush_if_due()
    rows = WebhookRejectionCount.objects.select_related("endpoint__credential")
    if not user_sees_all_companies(user=user):
        rows = queryset_for_user(queryset=rows, user=user)
    return list(rows.order_by("status", "endpoint_id"))
