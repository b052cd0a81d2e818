"""List filters of the product's admin lists that Django does not have.

- ``AgeListFilter``: rows of the last hour, day or week (the index's "failures in the last day"
  leads to the audit list filtered this way).
- ``ExpiryRiskListFilter``: in-progress jobs at risk of expiry, as the index counts them.
- ``LastCheckOutcomeFilter``: a company's last check outcome in words (as the index shows it),
  keeping the parameter Django's own filter used (``last_check_outcome__exact``).
- ``XeroStatusListFilter``: companies by their Xero connection's status (the index's "Xero
  connections to re-authorise" leads to the company list filtered this way).
- ``PleoJobIdFilter``: a text box for a Pleo job id (in full, or its first characters as the
  lists show them), instead of a sidebar listing every job's UUID.

Each filters the list's own (company-scoped) queryset, so none shows a row the list would not.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from django.contrib import admin

from exports import clock
from exports.choices import XeroConnectionStatus
from exports.selectors import index_panel


class LastCheckOutcomeFilter(admin.SimpleListFilter):
    title = "last check outcome"
    parameter_name = "last_check_outcome__exact"

    def lookups(self, request, model_admin):
        from exports.services.outcome_labels import OUTCOME_LABELS

        return list(OUTCOME_LABELS.items())

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(last_check_outcome=self.value())
        return queryset


class AgeListFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"
    field_name = "created_at"
    AGES = {
        "1h": ("Last hour", timedelta(hours=1)),
        "24h": ("Last 24 hours", timedelta(days=1)),
        "7d": ("Last 7 days", timedelta(days=7)),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.AGES.items()]

    def queryset(self, request, queryset):
        found = self.AGES.get(self.value() or "")
        if found is None:
            return queryset
        return queryset.filter(**{f"{self.field_name}__gte": clock.now() - found[1]})


class ExpiryRiskListFilter(admin.SimpleListFilter):
    """In-progress jobs of active companies with less than a quarter of ``expiresIn`` left."""

    title = "expiry"
    parameter_name = index_panel.EXPIRY_PARAMETER
    AT_RISK = index_panel.EXPIRY_AT_RISK

    def lookups(self, request, model_admin):
        return [(self.AT_RISK, "At risk of expiry")]

    def queryset(self, request, queryset):
        if self.value() != self.AT_RISK:
            return queryset
        from exports.models import ExportJob
        from exports.selectors.index_status import AT_RISK_SHARE

        now = clock.now()
        candidates = queryset.filter(
            status=ExportJob.Status.IN_PROGRESS, company__active=True
        ).values_list("pk", "created_at", "last_updated_at", "expires_in")
        at_risk = [
            pk
            for pk, created_at, updated_at, expires_in in candidates
            if ((updated_at or created_at) + timedelta(seconds=expires_in) - now).total_seconds()
            < expires_in * AT_RISK_SHARE
        ]
        return queryset.filter(pk__in=at_risk)


class XeroStatusListFilter(admin.SimpleListFilter):
    """Companies whose Xero connection has a status (connected, needs re-authorisation)."""

    title = "Xero connection"
    parameter_name = index_panel.XERO_STATUS_PARAMETER

    # The words of the index's count ("Xero connections to reconnect"); a list row says why.
    LABELS = {
        XeroConnectionStatus.OK: "Connected",
        XeroConnectionStatus.NEEDS_REAUTHORISATION: "To reconnect",
    }

    def lookups(self, request, model_admin):
        return list(self.LABELS.items())

    def queryset(self, request, queryset):
        if self.value() in XeroConnectionStatus.values:
            return queryset.filter(xero_connection__status=self.value())
        return queryset


_JOB_ID_PART = re.compile(r"[0-9a-f-]{1,36}")


class InputListFilter(admin.SimpleListFilter):
    """A filter that is a text box (``template``), keeping the list's other parameters."""

    template = "admin/exports/input_filter.html"
    placeholder = ""

    def lookups(self, request, model_admin):
        return ()

    def has_output(self):
        return True

    def choices(self, changelist):
        kept = [
            (name, value)
            for name, values in changelist.filter_params.items()
            if name != self.parameter_name
            for value in values
        ]
        yield {
            "parameter_name": self.parameter_name,
            "value": self.value() or "",
            "placeholder": self.placeholder,
            "kept": kept,
            "clear_url": changelist.get_query_string(remove=[self.parameter_name]),
        }


class PleoJobIdFilter(InputListFilter):
    """``?job=<Pleo job id>``: the whole UUID, or its first characters (``1a2b3c4d``)."""

    title = "Pleo job id"
    parameter_name = "job"
    placeholder = "Job id or its first 8 characters"
    lookup = "export_job__pleo_job_id"

    @classmethod
    def normalise(cls, value: str) -> str:
        return value.strip().strip("…. ").lower()

    def queryset(self, request, queryset):
        value = self.normalise(self.value() or "")
        if not value:
            return queryset
        if not _JOB_ID_PART.fullmatch(value):
            return queryset.none()
        try:
            return queryset.filter(**{self.lookup: uuid.UUID(value)})
        except ValueError:
            return queryset.filter(**{f"{self.lookup}__startswith": value})
