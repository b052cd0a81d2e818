"""Permissions of company-scoped staff.

A staff user who does not see every company (``exports.selectors.company_access``) keeps only the
permissions they hold on models whose rows can be filtered to their companies. Whatever else they
were granted (the worker and task tables, users, groups, memberships) is not theirs to use: those
rows belong to no company, so no admin could filter them. This is decided here, once, for every
admin page including third-party ones (django-q2's).
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend

from exports.selectors.company_access import VIEW_ALL_COMPANIES, scopable_permissions


class CompanyScopedModelBackend(ModelBackend):
    def get_all_permissions(self, user_obj, obj=None):
        perms = super().get_all_permissions(user_obj, obj)
        if not perms or user_obj.is_superuser or VIEW_ALL_COMPANIES in perms:
            return perms
        return perms & scopable_permissions()
