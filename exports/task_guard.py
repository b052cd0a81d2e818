"""Only the product's task functions run (the allow-list: ``exports.services.schedules``).

django-q2 stores a task's function and result hook as dotted paths and the worker imports and
calls whatever they name. Two guards besides the Schedule admin's form:

- :func:`refuse_foreign_tasks` (django-q2's ``pre_enqueue`` signal, in every process that queues:
  the scheduler, the web server, commands): a task whose function is not on the list is sent as
  :func:`refused_task` instead, which fails with the reason (visible under Failed tasks); a hook
  not on the list is dropped. Either is logged at ERROR. Nothing is raised at the sender: the
  scheduler creates all due schedules in one transaction, and one refused row must not stop the
  poll schedule.
- :func:`schedules_run_product_tasks`, a system check (tag ``database``: ``manage.py check
  --database default``, and ``migrate``) that names every stored schedule outside the list.
"""

from __future__ import annotations

import logging

from django.core.checks import Error, Tags, register
from django.db import DatabaseError, connections, router
from django.dispatch import receiver
from django_q.models import Schedule
from django_q.signals import pre_enqueue

from exports.services.schedules import (
    dotted_path,
    schedule_hook_allowed,
    schedules_disallowed,
    task_function_allowed,
)

logger = logging.getLogger(__name__)

REFUSED_TASK = "exports.task_guard.refused_task"


class TaskRefused(Exception):
    """A queued task named a function outside the product's task functions."""


def refused_task(func: str, *args, **kwargs) -> None:
    """What runs instead of a refused task: fails, saying what was refused."""
    raise TaskRefused(
        f"Not run: {func!r} is not one of the product's task functions "
        f"(exports.services.schedules.TASK_FUNCTIONS)."
    )


@receiver(pre_enqueue, dispatch_uid="exports.task_guard.refuse_foreign_tasks")
def refuse_foreign_tasks(sender, task: dict, **kwargs) -> None:
    label = f"task {task.get('name')!r} (group {task.get('group')!r})"
    if not schedule_hook_allowed(task.get("hook")):
        logger.error(
            "Hook %r of %s dropped: not one of the product's hooks",
            dotted_path(task["hook"]),
            label,
        )
        task.pop("hook", None)
    func = task.get("func")
    if task_function_allowed(func):
        return
    logger.error(
        "Refused to run %r for %s: not one of the product's task functions; queued as a failure",
        dotted_path(func),
        label,
    )
    task["func"] = REFUSED_TASK
    task["args"] = (dotted_path(func),)
    task["kwargs"] = {}
    task.pop("chain", None)


@register(Tags.database)
def schedules_run_product_tasks(app_configs=None, databases=None, **kwargs):
    """Every stored schedule runs one of the product's task functions, with arguments that fit.

    Reads the database only when asked to (``databases``), and says nothing when the schedule
    table is not there yet (``migrate`` runs its checks before migrating) or cannot be read
    (the database checks report that)."""
    alias = router.db_for_read(Schedule)
    if not databases or alias not in databases:
        return []
    try:
        if Schedule._meta.db_table not in connections[alias].introspection.table_names():
            return []
        found = schedules_disallowed()
    except DatabaseError:
        return []
    return [
        Error(
            f"Schedule {schedule.name or '(no name)'!r} (id {schedule.pk}) may not run: "
            f"{'; '.join(problems)}.",
            hint=(
                "Only the product's task functions run (exports.services.schedules): a function "
                "outside them is queued as a refused task, arguments that do not parse stop the "
                "scheduler's pass. Delete the schedule, or fix it in the admin (Django Q > "
                "Scheduled tasks)."
            ),
            id="exports.E010",
        )
        for schedule, problems in found
    ]
