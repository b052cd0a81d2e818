"""``{% export_status as status %}``: the admin index's at-a-glance status
(``templates/admin/index.html``). Thin: the reads are in ``exports.selectors.index_status``."""

from __future__ import annotations

from django import template

from exports.selectors.index_status import index_status

register = template.Library()


@register.simple_tag(takes_context=True)
def export_status(context):
    """``{% export_status as status %}``: None for users who may not view companies."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.has_perm("exports.view_company"):
        return None
    return index_status(user=user)
