"""``{% load operator_view %}``: the index's rejected-webhook counts and live-refresh hooks
(issue 17 §4, §5). Reads come from selectors; nothing here writes or shows a request's content."""

from __future__ import annotations

from django import template

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
