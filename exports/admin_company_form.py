"""The company's add/change form (issue 17 §10): what an operator fills in, and nothing internal.

The Pleo company id gets a field wide enough for a UUID and a hint where to find it. The run's
bookkeeping (the lease, recheck and queued-check markers, the unknown-status hold, timestamps) is
shown read-only in a collapsed "Internal state" fieldset at the end of the change page, and not
at all on the add page. Whatever fields the admin lists, these are moved there.
"""

from __future__ import annotations

from django import forms

INTERNAL_FIELDS = (
    "lease_holder",
    "lease_expires_at",
    "recheck_requested",
    "recheck_trigger",
    "work_pending",
    "check_queued_at",
    "check_picked_queued_at",
    "next_run_not_before",
    "unknown_status_job_id",
    "unknown_status",
    "unknown_status_since",
    "created_at",
    "updated_at",
)

PLEO_COMPANY_ID_HELP = (
    "The company's id in Pleo: a UUID of 36 characters (8-4-4-4-12 hex digits). Pleo's API shows "
    "it as companyId on every export job of the company (GET /v3/export-jobs) and in the "
    "export-job webhooks; Pleo support can also give it. It is not the company's registration "
    "number."
)
UUID_PLACEHOLDER = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"


class CompanyFormMixin:
    """For ``CompanyAdmin``: the UUID field and the internal fields out of the form."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "pleo_company_id" and field is not None:
            field.widget = forms.TextInput(
                attrs={
                    "size": 40,
                    "maxlength": 36,
                    "style": "width: 38ch; font-family: monospace",
                    "placeholder": UUID_PLACEHOLDER,
                    "spellcheck": "false",
                    "autocomplete": "off",
                }
            )
            field.help_text = PLEO_COMPANY_ID_HELP
        return field

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields + tuple(f for f in INTERNAL_FIELDS if f not in fields)

    def get_fieldsets(self, request, obj=None):
        fieldsets = []
        for name, options in super().get_fieldsets(request, obj):
            fields = [f for f in options.get("fields", ()) if f not in INTERNAL_FIELDS]
            if fields:
                fieldsets.append((name, {**options, "fields": fields}))
        if obj is not None and obj.pk:
            fieldsets.append(
                (
                    "Internal state (read-only)",
                    {
                        "classes": ["collapse"],
                        "description": "What the runs keep for this company: the lease that "
                        "lets one run at a time work on it, the queued and requested checks, and "
                        "a hold by a job in a status we do not know. Shown to explain what "
                        "happens; nothing here is edited.",
                        "fields": list(INTERNAL_FIELDS),
                    },
                )
            )
        return fieldsets
