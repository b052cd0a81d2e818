"""What the product's admins share: permission mixins (rows shown but never added or edited
here), :func:`admin_views`, the URL patterns of an admin's own pages, and :func:`warning_link`,
the one look of a list's "⚠" warning."""

from __future__ import annotations

from collections.abc import Callable

from django.urls import URLPattern, path
from django.utils.html import format_html
from django.utils.safestring import SafeString


def admin_views(model_admin, *routes: tuple[str, Callable, str]) -> list[URLPattern]:
    """``(route, view, name)`` as URL patterns of ``model_admin``, each view behind the admin
    site's ``admin_view`` (staff login, no caching). Put them before ``super().get_urls()``: its
    catch-all ``<path:object_id>/`` would take them."""
    wrap = model_admin.admin_site.admin_view
    return [path(route, wrap(view), name=name) for route, view, name in routes]


def warning_link(url: str, text: str, *, bold: bool = False) -> SafeString:
    """A red "⚠ ``text``" link to the page that fixes it; ``bold`` for what stops the exports
    until someone acts (a re-authorisation)."""
    style = "color:#ba2121;font-weight:bold" if bold else "color:#ba2121"
    return format_html('<a href="{}" style="{}">⚠ {}</a>', url, style, text)


class ViewOnlyMixin:
    """Rows are shown, never added or edited here (they come from Pleo or from our runs)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReadOnlyMixin(ViewOnlyMixin):
    """Shown, never added, edited or deleted (audit trail, mirrors of Pleo, the journal)."""

    def has_delete_permission(self, request, obj=None):
        return False
