"""django-q2's admin, restricted: schedules run only the product's task functions, and stored
tasks are re-queued only by superusers.

django-q2 registers its own ``ScheduleAdmin`` (any dotted path as function and hook),
``TaskAdmin``/``FailAdmin`` (a "Resubmit" action for anyone who may view them, which queues the
stored function with its stored arguments again). They are replaced here: the schedule form offers
only :data:`exports.services.schedules.TASK_FUNCTIONS`, no hook unless listed in
:data:`~exports.services.schedules.HOOK_FUNCTIONS`, and arguments that fit the chosen function;
"Resubmit" is offered to superusers only and the task pages (and the ORM broker's queue) are
read-only for everyone else.
The permissions to add or change schedules are meant for superusers (README, SECURITY.md).
"""

from __future__ import annotations

import django_q.admin as q_admin  # registers django-q2's admins first, so they can be replaced
from django import forms
from django.contrib import admin
from django_q.models import Failure, OrmQ, Schedule, Success

from exports.services.schedules import HOOK_FUNCTIONS, TASK_FUNCTIONS, schedule_problems


class ScheduleForm(forms.ModelForm):
    func = forms.ChoiceField(
        label="Function",
        choices=[("", "---------"), *TASK_FUNCTIONS.items()],
        help_text="Only the product's task functions can be scheduled.",
    )
    hook = forms.ChoiceField(
        label="Hook",
        choices=[("", "(none)"), *HOOK_FUNCTIONS.items()],
        required=False,
        help_text="A function called with the finished task; only the product's hooks.",
    )

    class Meta:
        model = Schedule
        fields = (
            "name",
            "func",
            "hook",
            "args",
            "kwargs",
            "schedule_type",
            "minutes",
            "repeats",
            "next_run",
            "cron",
            "cluster",
            "intended_date_kwarg",
        )

    def clean_hook(self):
        return self.cleaned_data.get("hook") or None

    def clean(self):
        cleaned = super().clean()
        if self.errors.get("func") or self.errors.get("hook"):
            return cleaned
        problems = schedule_problems(
            func=cleaned.get("func"),
            hook=cleaned.get("hook"),
            args=cleaned.get("args"),
            kwargs=cleaned.get("kwargs"),
            intended_date_kwarg=cleaned.get("intended_date_kwarg"),
        )
        for problem in problems:
            self.add_error(None, f"This schedule may not run: {problem}.")
        return cleaned


def _superuser_only(request) -> bool:
    return bool(request.user.is_active and request.user.is_superuser)


class ScheduleAdmin(q_admin.ScheduleAdmin):
    form = ScheduleForm


class _StoredTaskAdmin:
    """Re-queueing a stored task runs its stored function again: superusers only. The pages
    are read-only (saving a task calls its hook) for everyone else."""

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not _superuser_only(request):
            actions.pop("resubmit_task", None)
        return actions

    def has_change_permission(self, request, obj=None):
        return _superuser_only(request) and super().has_change_permission(request, obj)


class SuccessAdmin(_StoredTaskAdmin, q_admin.TaskAdmin):
    pass


class FailureAdmin(_StoredTaskAdmin, q_admin.FailAdmin):
    pass


class QueueAdmin(q_admin.QueueAdmin):
    """The ORM broker's queue: a row's ``lock`` and ``key`` decide when and by which cluster a
    queued task is delivered (again). Changed by superusers only."""

    def has_change_permission(self, request, obj=None):
        return _superuser_only(request) and super().has_change_permission(request, obj)


REPLACED = {
    Schedule: ScheduleAdmin,
    Success: SuccessAdmin,
    Failure: FailureAdmin,
    OrmQ: QueueAdmin,
}
for model, model_admin in REPLACED.items():
    if admin.site.is_registered(model):  # OrmQ: only with the ORM broker (django-q2's rule)
        admin.site.unregister(model)
        admin.site.register(model, model_admin)
