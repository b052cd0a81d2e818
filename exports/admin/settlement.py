"""Items as this bridge processed them, across jobs, and the manual bookings of failed ones.

"Mark as booked by hand" (permission ``exports.settle_item``) asks, on a confirmation page, for
the ledger reference of each selected failed item; "Forget manual booking" asks for a
confirmation. Both call ``exports.services.settlement`` and are audited there. Company-scoped
users see and settle only their companies' items.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import OuterRef, Subquery
from django.template.response import TemplateResponse

from exports.admin.mixins import ReadOnlyMixin
from exports.admin.scoping import CompanyScopedAdminMixin
from exports.models import ExportItemRecord, ManualBooking
from exports.services.settlement import manual_booking_create, manual_booking_forget

SETTLE_PERMISSION = "exports.settle_item"
CONFIRM_TEMPLATE = "admin/exports/exportitemrecord/settle_confirm.html"


class ReferencesForm(forms.Form):
    """One reference field per failed record, named ``reference_<pk>``."""

    def __init__(self, *args, records, **kwargs):
        super().__init__(*args, **kwargs)
        self.records = records
        for record in records:
            self.fields[f"reference_{record.pk}"] = forms.CharField(
                label=f"{record.accounting_entry_id} ({record.failure_reason_type or 'failed'})",
                max_length=200,
                required=True,
                help_text="Ledger reference (voucher number) of the booking made by hand.",
            )

    def rows(self):
        """(record, its reference field) for the confirmation page."""
        return [(record, self[f"reference_{record.pk}"]) for record in self.records]

    def references(self) -> dict[int, str]:
        return {record.pk: self.cleaned_data[f"reference_{record.pk}"] for record in self.records}


@admin.register(ExportItemRecord)
class ExportItemRecordAdmin(CompanyScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "accounting_entry_id",
        "export_job",
        "company",
        "state",
        "result",
        "external_id",
        "failure_reason_type",
        "booked_by_hand",
        "updated_at",
    )
    list_filter = ("result", "state", "failure_reason_type", "export_job__company")
    search_fields = ("accounting_entry_id", "external_id", "export_job__pleo_job_id")
    list_select_related = ("export_job__company",)
    actions = ["mark_booked_by_hand", "forget_manual_booking"]

    @admin.display(description="Company", ordering="export_job__company__name")
    def company(self, obj):
        return obj.export_job.company

    def get_queryset(self, request):
        """With the manual booking of each item's expense (one subquery, not one per row)."""
        bookings = ManualBooking.objects.filter(
            company_id=OuterRef("export_job__company_id"),
            accounting_entry_id=OuterRef("accounting_entry_id"),
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                manual_reference=Subquery(bookings.values("reference")[:1]),
                manual_by=Subquery(bookings.values("booked_by_name")[:1]),
            )
        )

    @admin.display(description="Booked by hand")
    def booked_by_hand(self, obj):
        if not getattr(obj, "manual_reference", None):
            return "-"
        return f"{obj.manual_reference} ({obj.manual_by})"

    def has_settle_permission(self, request):
        return request.user.has_perm(SETTLE_PERMISSION)

    @admin.action(description="Mark as booked by hand…", permissions=["settle"])
    def mark_booked_by_hand(self, request, queryset):
        records = list(queryset.filter(result=ExportItemRecord.Result.FAILED))
        if len(records) < queryset.count():
            self.message_user(
                request,
                "Only failed items can be booked by hand; the others are left out.",
                messages.WARNING,
            )
        if not records:
            return None
        form = ReferencesForm(request.POST if "confirm" in request.POST else None, records=records)
        if "confirm" in request.POST and form.is_valid():
            outcome = manual_booking_create(
                records=records, references=form.references(), user=request.user
            )
            for reason in outcome.skipped:
                self.message_user(request, reason, messages.WARNING)
            if outcome.settled:
                self.message_user(
                    request,
                    f"{len(outcome.settled)} item(s) marked as booked by hand. Export them again "
                    f"from Pleo: they are reported successful with your reference.",
                    messages.SUCCESS,
                )
            return None
        return self._confirm(
            request, records, form, "mark_booked_by_hand", "Mark as booked by hand"
        )

    @admin.action(description="Forget manual booking…", permissions=["settle"])
    def forget_manual_booking(self, request, queryset):
        records = list(queryset)
        if "confirm" in request.POST:
            forgotten = manual_booking_forget(records=records, user=request.user)
            self.message_user(
                request, f"{forgotten} manual booking(s) forgotten.", messages.SUCCESS
            )
            return None
        return self._confirm(
            request, records, None, "forget_manual_booking", "Forget manual booking"
        )

    def _confirm(self, request, records, form, action, title):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "records": records,
            "form": form,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, CONFIRM_TEMPLATE, context)


@admin.register(ManualBooking)
class ManualBookingAdmin(CompanyScopedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    """Created and forgotten from the item list (audited); shown here."""

    list_display = (
        "reference",
        "company",
        "accounting_entry_id",
        "item_record",
        "booked_by_name",
        "booked_at",
    )
    list_filter = ("company",)
    search_fields = ("reference", "accounting_entry_id")
    list_select_related = ("company", "item_record")
    readonly_fields = (
        "company",
        "accounting_entry_id",
        "reference",
        "item_record",
        "booked_by_name",
        "booked_at",
    )
    exclude = ("booked_by",)
