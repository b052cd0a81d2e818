"""The local journal in the admin (``exports.adapters.journal``): read-only.

Every amount is shown in major units with its currency (``exports.money``), an entry shows its
debit and credit totals and Pleo's links as links, the list filters by Pleo job id with a text
box (a sidebar of every job's UUID does not scale), and "Download CSV" exports the filtered list
(``exports.selectors.journal_csv``; ``?format=csv-nordic`` for Nordic Excel).
"""

from __future__ import annotations

import copy

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils.html import format_html, format_html_join

from exports import clock
from exports.admin.filters import PleoJobIdFilter
from exports.admin.job_page import JobLinkMixin
from exports.admin.mixins import ReadOnlyMixin, admin_views
from exports.admin.receipts import EntryReceiptsAdminMixin
from exports.admin.scoping import CompanyScopedAdminMixin, ViewOnlyTabularInline
from exports.models import JournalEntry, JournalLine
from exports.money import format_minor, format_money
from exports.selectors.journal_csv import CsvFormat, journal_csv

FORMAT_PARAM = "format"


class JournalLineInline(ViewOnlyTabularInline):
    model = JournalLine
    fields = ("position", "kind", "account_code", "account_name", "debit_amount", "credit_amount")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("entry")

    @admin.display(description="Debit")
    def debit_amount(self, obj):
        return format_minor(obj.debit, obj.entry.currency) if obj.debit else ""

    @admin.display(description="Credit")
    def credit_amount(self, obj):
        return format_minor(obj.credit, obj.entry.currency) if obj.credit else ""


def pleo_links_html(links) -> str:
    """Pleo's ``_links`` (``{"web": {"exportItem": url}, …}``): http(s) addresses as links, any
    other (``pleo://`` for the mobile app) as text."""
    rows = []
    if isinstance(links, dict):
        for group, named in links.items():
            if not isinstance(named, dict):
                continue
            for name, url in named.items():
                if isinstance(url, str) and url:
                    rows.append((f"{group} · {name}", url))
    if not rows:
        return "-"
    return format_html(
        '<ul class="pleo-links">{}</ul>',
        format_html_join(
            "",
            "<li>{}: {}</li>",
            (
                (
                    label,
                    format_html('<a href="{}" rel="noopener noreferrer">{}</a>', url, url)
                    if url.startswith(("https://", "http://"))
                    else url,
                )
                for label, url in rows
            ),
        ),
    )


@admin.register(JournalEntry)
class JournalEntryAdmin(
    JobLinkMixin, EntryReceiptsAdminMixin, CompanyScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin
):
    """The local journal, read-only; "Download CSV" exports the filtered list (one row a line)."""

    list_display = (
        "number",
        "date",
        "company",
        "job_link",
        "accounting_entry_id",
        "total",
        "currency",
        "description",
    )
    list_filter = ("company", PleoJobIdFilter, "currency")
    search_fields = (
        "accounting_entry_id",
        "reconciliation_id",
        "description",
        "export_job__pleo_job_id",
    )
    list_select_related = ("company", "export_job")
    date_hierarchy = "date"
    inlines = [JournalLineInline]
    change_list_template = "admin/exports/journalentry/change_list.html"
    fields = (
        "number",
        "company",
        "export_job",
        "accounting_entry_id",
        "date",
        "total",
        "currency",
        "debit_total",
        "credit_total",
        "supplier_total",
        "description",
        "pleo_type",
        "reconciliation_id",
        "vendor_code",
        "vendor_name",
        "pleo_links_shown",
        "receipts_shown",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="Number", ordering="pk")
    def number(self, obj):
        return obj.number

    @admin.display(description="Amount", ordering="amount")
    def total(self, obj):
        return format_minor(obj.amount, obj.currency)

    def _side_total(self, obj, side: str) -> str:
        if obj is None or obj.pk is None:
            return "-"
        return format_money(sum(getattr(line, side) for line in obj.lines.all()), obj.currency)

    @admin.display(description="Total debit")
    def debit_total(self, obj):
        return self._side_total(obj, "debit")

    @admin.display(description="Total credit")
    def credit_total(self, obj):
        return self._side_total(obj, "credit")

    @admin.display(description="Amount in the supplier's currency")
    def supplier_total(self, obj):
        if obj.supplier_amount is None or not obj.supplier_currency:
            return "-"
        return format_money(obj.supplier_amount, obj.supplier_currency)

    @admin.display(description="Pleo links")
    def pleo_links_shown(self, obj):
        return pleo_links_html(obj.pleo_links if obj else None)

    def get_urls(self):
        own = admin_views(self, ("csv/", self.csv_view, "exports_journalentry_csv"))
        return own + super().get_urls()

    def csv_view(self, request):
        """The changelist's entries (its filters and search apply) as CSV; ``?format=`` picks
        ``csv`` (the default) or ``csv-nordic``."""
        if not self.has_view_permission(request):
            self.message_user(request, "You may not view the journal.", messages.ERROR)
            return redirect("admin:index")
        try:
            csv_format = CsvFormat(request.GET.get(FORMAT_PARAM) or CsvFormat.STANDARD)
        except ValueError:
            choices = ", ".join(CsvFormat)
            return HttpResponse(
                f"Unknown format: use one of {choices}.", status=400, content_type="text/plain"
            )
        listing = copy.copy(request)  # the list's own parameters, without the format
        listing.GET = request.GET.copy()
        listing.GET.pop(FORMAT_PARAM, None)
        try:
            changelist = self.get_changelist_instance(listing)
        except IncorrectLookupParameters:
            return HttpResponse("Unknown filter.", status=400, content_type="text/plain")
        body = journal_csv(entries=changelist.get_queryset(listing), csv_format=csv_format)
        response = HttpResponse(body, content_type="text/csv; charset=utf-8")
        suffix = "-nordic" if csv_format == CsvFormat.NORDIC else ""
        name = f"journal-{clock.now():%Y%m%d-%H%M%S}{suffix}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
