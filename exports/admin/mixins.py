"""Permission mixins shared by the product's admins: rows shown but never added or edited here."""

from __future__ import annotations


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
