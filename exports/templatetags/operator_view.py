"""``{% load operator_view %}``: the index's rejected-webhook counts and live-refresh hooks.
Reads come from selectors; nothing here writes or shows a request's content."""

from __future__ import annotations

from django import template
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from exports.rejections.selectors import rejection_counts_for_index

register = template.Library()


@register.simple_tag(takes_context=True)
def rejected_webhooks(context):
    """``{% rejected_webhooks as rows %}``: the counts the user may see (empty: none)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.has_perm("exports.view_credential"):
        return []
    return rejection_counts_for_index(user=user)


@register.simple_tag(takes_context=True)
def live_status_root(context, company=None, job=None):
    """The element ``exports/live_status.js`` reads (where to poll, whether to start) with the
    banner it keeps up to date. Empty for a user who may not see the object."""
    from exports.selectors.live_status import (
        live_status_for_company,
        live_status_for_index,
        live_status_for_job,
    )

    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.has_perm("exports.view_company"):
        return ""
    url = reverse("admin:exports_live_status")
    if job is not None and job.pk:
        status, url = live_status_for_job(user=user, job_pk=job.pk), f"{url}?job={job.pk}"
    elif company is not None and company.pk:
        status = live_status_for_company(user=user, company_pk=company.pk)
        url = f"{url}?company={company.pk}"
    else:
        status = live_status_for_index(user=user)
    if status is None:
        return ""
    return format_html(
        '<div id="live-status" data-live-status-url="{}" data-live-active="{}">'
        '<p id="live-status-banner" class="live-status-banner"{}>{}</p></div>',
        url,
        "1" if status.active else "0",
        mark_safe("" if status.banner else " hidden"),  # noqa: S308 (a constant)
        status.banner,
    )
