"""Company memberships: which companies a staff user or a group may see.
Edited by superusers only."""

from __future__ import annotations

from django.contrib import admin

from exports.admin.scoping import SuperuserOnlyMixin
from exports.models import CompanyMembership


@admin.register(CompanyMembership)
class CompanyMembershipAdmin(SuperuserOnlyMixin, admin.ModelAdmin):
    """Limits a staff user or a group to some companies. Superusers only, whatever permissions."""

    list_display = ("__str__", "company_names", "updated_at")
    list_select_related = ("user", "group")
    fields = ("user", "group", "companies")
    filter_horizontal = ("companies",)
    search_fields = ("user__username", "group__name", "companies__name")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("companies")

    @admin.display(description="Companies")
    def company_names(self, obj):
        return ", ".join(company.name for company in obj.companies.all()) or "(none)"
