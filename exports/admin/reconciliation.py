"""The company's reconciliation page: a period form, totals per status, the rows, and a CSV.

Without ``date_from`` and ``date_to`` the page only shows the form (no Pleo call); with them it runs
``exports.services.reconciliation`` (read-only: Pleo's items of each job claimed in the period,
through the company's credential and request budget, and the ledger) and shows the report;
``&format=csv`` downloads it.
"""

from __future__ import annotations

from datetime import date

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from exports import clock
from exports.services.reconciliation import NOT_COMPARED, last_month, reconciliation_report

RECONCILE_PERMISSION = "exports.view_exportitemrecord"
TEMPLATE = "admin/exports/reconciliation.html"


class PeriodForm(forms.Form):
    date_from = forms.DateField(label="From")
    date_to = forms.DateField(label="To")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("date_from") and cleaned.get("date_to"):
            if cleaned["date_to"] < cleaned["date_from"]:
                raise forms.ValidationError("'To' is before 'From'.")
        return cleaned


def may_reconcile(request) -> bool:
    return request.user.has_perm(RECONCILE_PERMISSION)


def reconciliation_page(model_admin, request, *, company):
    if not may_reconcile(request):
        model_admin.message_user(request, "You may not reconcile exports.", messages.ERROR)
        return redirect("admin:index")
    asked = "date_from" in request.GET and "date_to" in request.GET
    default_from, default_to = last_month(clock.now().date())
    form = PeriodForm(
        request.GET if asked else None, initial={"date_from": default_from, "date_to": default_to}
    )
    report = None
    if asked and form.is_valid():
        date_from: date = form.cleaned_data["date_from"]
        date_to: date = form.cleaned_data["date_to"]
        report = reconciliation_report(company=company, date_from=date_from, date_to=date_to)
        if request.GET.get("format") == "csv":
            response = HttpResponse(report.csv_text(), content_type="text/csv; charset=utf-8")
            name = f"reconciliation-{company.pk}-{date_from}-{date_to}.csv"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Reconciliation – {company.name}",
        "opts": model_admin.model._meta,
        "company": company,
        "form": form,
        "report": report,
        "totals": sorted(report.totals().items()) if report else [],
        "query": request.GET.urlencode(),
        "not_compared_note": NOT_COMPARED,
    }
    return TemplateResponse(request, TEMPLATE, context)
