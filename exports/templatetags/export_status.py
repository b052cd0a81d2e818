"""``{% export_status as status %}``: the admin index's at-a-glance status
(``templates/admin/index.html``). Thin: the reads are in ``exports.selectors.index_status``."""

from __future__ import annotations

from django import template

from exports.selectors.index_status import index_status
from exports.templatetags.request_user import user_with_perm

register = template.Library()


@register.simple_tag(takes_context=True)
def export_status(context):
    """``{% export_status as status %}``: None for users who may not view companies."""
    user = user_with_perm(context, "exports.view_company")
    if user is None:
        return None
    return index_status(user=user)
