"""Company-scoped staff in the admin: one mixin, used by every admin of the product.

What a user may see is decided in ``exports.selectors.company_access``; this module only applies
it to what an admin shows and does: the list and every page of an object (a row outside the scope
is "not found"), inlines, the choices of list filters and of foreign-key fields, and the querysets
that actions and the admin's own views (Check now, CSV, Connect to Pleo) are given. The company
memberships themselves are edited by superusers only.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path

from exports.admin.mixins import ViewOnlyMixin
from exports.selectors.company_access import (
    model_is_scopable,
    queryset_for_user,
    user_sees_all_companies,
)


class ScopedRelatedFieldListFilter(admin.RelatedFieldListFilter):
    """A related-object filter that offers only the objects the user may see."""

    def field_choices(self, field, request, model_admin):
        related = field.remote_field.model
        if user_sees_all_companies(user=request.user) or not model_is_scopable(related):
            return super().field_choices(field, request, model_admin)
        visible = queryset_for_user(queryset=related._default_manager.all(), user=request.user)
        return field.get_choices(
            include_blank=False,
            ordering=self.field_admin_ordering(field, request, model_admin),
            limit_choices_to={"pk__in": visible.values("pk")},
        )


def scoped_list_filter(model, entry):
    """``entry`` of a ``list_filter``, with a related-object filter made to respect the scope."""
    if isinstance(entry, str):
        field = get_fields_from_path(model, entry)[-1]
        if getattr(field, "remote_field", None) is not None:
            return (entry, ScopedRelatedFieldListFilter)
        return entry
    if isinstance(entry, tuple | list) and entry[1] is admin.RelatedFieldListFilter:
        return (entry[0], ScopedRelatedFieldListFilter)
    # RelatedOnlyFieldListFilter takes its choices from the (scoped) list itself.
    return entry


class CompanyScopedAdminMixin:
    """For model admins and inlines: rows, filters and form choices limited to the user's scope.

    A company-scoped user may not add rows (a new company or credential would fall outside their
    scope) unless the admin sets ``scoped_users_may_add``.
    """

    scoped_users_may_add = False

    def get_queryset(self, request):
        return queryset_for_user(queryset=super().get_queryset(request), user=request.user)

    def get_list_filter(self, request):
        return [scoped_list_filter(self.model, entry) for entry in super().get_list_filter(request)]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        self._scope_choices(db_field, request, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        self._scope_choices(db_field, request, kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def _scope_choices(self, db_field, request, kwargs):
        related = db_field.remote_field.model
        if model_is_scopable(related) and not user_sees_all_companies(user=request.user):
            queryset = kwargs.get("queryset")
            if queryset is None:
                queryset = related._default_manager.all()
            kwargs["queryset"] = queryset_for_user(queryset=queryset, user=request.user)

    def has_add_permission(self, request, *args):
        if not self.scoped_users_may_add and not user_sees_all_companies(user=request.user):
            return False
        return super().has_add_permission(request, *args)


class SuperuserOnlyMixin:
    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser


class ViewOnlyTabularInline(CompanyScopedAdminMixin, ViewOnlyMixin, admin.TabularInline):
    """A company-scoped table of related rows that nobody edits here: no blank rows to fill in,
    no delete boxes, every field it shows read-only."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields
