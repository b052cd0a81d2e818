"""All schedules in one place, created or updated by name; never duplicated.

Also the one allow-list of what django-q2 may run for this product. A schedule's ``func`` and
``hook`` are dotted paths that the worker imports and calls (``pydoc.locate``), so whoever can
write a schedule can run any function the worker can import. Here, only :data:`TASK_FUNCTIONS`
run: the Schedule admin offers nothing else (``exports.admin.schedules``), a system check names any
stored schedule outside it, and every task queued by any process is checked against it before it
is sent (``exports.task_guard``). A new task function is added here, or it will not run.
"""

from __future__ import annotations

import ast
import inspect
import pydoc
from typing import Any

from django.conf import settings
from django.db import transaction
from django_q.models import Schedule

from exports import clock

POLL = "pleo-export-poll"
MAINTENANCE = "pleo-export-maintenance"
XERO_SYNC = "xero-sync-daily"

# The product's task functions: the only functions a schedule, or any queued task, may run.
TASK_FUNCTIONS: dict[str, str] = {
    "exports.tasks.poll_tick": "Poll tick: queue a check of every active company",
    "exports.tasks.maintenance": "Maintenance: heartbeat, recovery sweep, poll slices",
    "exports.tasks.run_company_check": "Check one company (args: company id, trigger)",
    "exports.tasks.run_company_checks": "Check several companies (args: [ids], trigger)",
    "exports.notifications.tasks.send_notification": "Send one notification (args: its id)",
    "exports.tasks.xero_sync_daily": "Daily: sync every Xero connection's accounts and codes",
}
# Result hooks a schedule may name (called with the finished task). The product has none.
HOOK_FUNCTIONS: dict[str, str] = {}


def schedules_wanted() -> dict[str, dict]:
    return {
        POLL: {
            "func": "exports.tasks.poll_tick",
            "schedule_type": Schedule.MINUTES,
            "minutes": settings.PLEO_POLL_INTERVAL_MINUTES,
        },
        MAINTENANCE: {
            "func": "exports.tasks.maintenance",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
        },
        XERO_SYNC: {"func": "exports.tasks.xero_sync_daily", "schedule_type": Schedule.DAILY},
    }


@transaction.atomic
def schedules_ensure() -> list[str]:
    """Create or update our schedules by name; remove duplicates of a name. Returns the changes."""
    changes = []
    for name, fields in schedules_wanted().items():
        existing = list(Schedule.objects.select_for_update().filter(name=name).order_by("pk"))
        if not existing:
            Schedule.objects.create(name=name, repeats=-1, next_run=clock.now(), **fields)
            changes.append(f"created {name}")
            continue
        keep, duplicates = existing[0], existing[1:]
        for duplicate in duplicates:
            duplicate.delete()
            changes.append(f"removed duplicate {name}")
        changed = [k for k, v in fields.items() if getattr(keep, k) != v]
        if changed or keep.repeats != -1:
            for key in changed:
                setattr(keep, key, fields[key])
            keep.repeats = -1
            keep.save()
            changes.append(f"updated {name} ({', '.join(changed) or 'repeats'})")
    return changes


# --- The allow-list ---------------------------------------------------------------------------


def dotted_path(func: Any) -> str:
    """A task's function as django-q2 holds it: a dotted path, or a callable."""
    if isinstance(func, str):
        return func
    module, name = getattr(func, "__module__", ""), getattr(func, "__qualname__", "")
    return f"{module}.{name}" if module and name else repr(func)


def task_function_allowed(func: Any) -> bool:
    return dotted_path(func) in TASK_FUNCTIONS


def schedule_hook_allowed(hook: Any) -> bool:
    return not hook or dotted_path(hook) in HOOK_FUNCTIONS


def schedule_arguments_parse(args: str | None, kwargs: str | None) -> tuple[tuple, dict]:
    """A schedule's ``args`` and ``kwargs`` text as django-q2's scheduler reads them (Python
    literals; ``kwargs`` as a dict or as ``x=1, y='a'``). ValueError: it could not read them
    (the scheduler would fail on the row, and with it on every schedule due in the same pass)."""
    parsed_args: Any = ()
    parsed_kwargs: Any = {}
    if kwargs:
        try:
            parsed_kwargs = ast.literal_eval(kwargs)
        except (SyntaxError, ValueError):
            try:
                call = ast.parse(f"f({kwargs})", mode="eval").body
                if not isinstance(call, ast.Call) or call.args:
                    raise ValueError
                parsed_kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
            except (SyntaxError, ValueError, TypeError):
                raise ValueError("keyword arguments: not a dict or name=value literals") from None
        if not isinstance(parsed_kwargs, dict) or not all(
            isinstance(name, str) for name in parsed_kwargs
        ):
            raise ValueError("keyword arguments: not a dict of names to values")
    if args:
        try:
            parsed_args = ast.literal_eval(args)
        except (SyntaxError, ValueError):
            raise ValueError("arguments: not Python literals") from None
        if not isinstance(parsed_args, tuple):
            parsed_args = (parsed_args,)
    return parsed_args, parsed_kwargs


def schedule_problems(
    *, func: Any, hook: Any, args: str | None, kwargs: str | None, intended_date_kwarg: str | None
) -> list[str]:
    """Why a schedule may not run as written (empty: it may). The arguments must fit the task
    function's own parameters, so none of django-q2's task options (``hook``, ``sync``,
    ``chain``, ``q_options`` …) can be slipped in as a keyword argument."""
    problems = []
    path = dotted_path(func)
    if not task_function_allowed(func):
        problems.append(f"function {path!r} is not one of the product's task functions")
    if not schedule_hook_allowed(hook):
        problems.append(f"hook {dotted_path(hook)!r} is not allowed (leave it empty)")
    try:
        parsed_args, parsed_kwargs = schedule_arguments_parse(args, kwargs)
    except ValueError as exc:
        problems.append(str(exc))
        return problems
    if problems:
        return problems
    target = pydoc.locate(path)
    if target is None:
        return [f"function {path!r} cannot be imported"]
    if intended_date_kwarg:
        parsed_kwargs = {**parsed_kwargs, intended_date_kwarg: "2000-01-01T00:00:00+00:00"}
    try:
        inspect.signature(target).bind(*parsed_args, **parsed_kwargs)
    except TypeError as exc:
        problems.append(f"the arguments do not fit {path}: {exc}")
    return problems


def schedules_disallowed() -> list[tuple[Schedule, list[str]]]:
    """Stored schedules that may not run as written, with the reasons."""
    found = []
    for schedule in Schedule.objects.order_by("pk"):
        problems = schedule_problems(
            func=schedule.func,
            hook=schedule.hook,
            args=schedule.args,
            kwargs=schedule.kwargs,
            intended_date_kwarg=schedule.intended_date_kwarg,
        )
        if problems:
            found.append((schedule, problems))
    return found
