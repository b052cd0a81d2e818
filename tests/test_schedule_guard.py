"""django-q2 runs only the product's task functions.

A schedule's function and hook are dotted paths the worker imports and calls: the Schedule admin
offers only the allow-list (exports.services.schedules), a system check names stored schedules
outside it, every queued task is checked before it is sent, and re-queueing stored tasks from
the admin is for superusers.
"""

from __future__ import annotations

import pydoc
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib import admin as django_admin
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.models import Failure, OrmQ, Schedule, Success
from django_q.scheduler import scheduler
from django_q.signing import SignedPackage
from django_q.tasks import async_task

from exports.admin.schedules import ScheduleForm
from exports.services import dispatch
from exports.services.schedules import TASK_FUNCTIONS, schedules_wanted
from exports.task_guard import REFUSED_TASK, schedules_run_product_tasks
from tests import processes

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:django_q_schedule_add")


def form_data(**overrides) -> dict:
    return {
        "name": "nightly",
        "func": "exports.tasks.poll_tick",
        "hook": "",
        "args": "",
        "kwargs": "",
        "schedule_type": Schedule.DAILY,
        "minutes": "",
        "repeats": "-1",
        "next_run_0": "2030-01-01",
        "next_run_1": "03:00:00",
        "cron": "",
        "cluster": "",
        "intended_date_kwarg": "",
        **overrides,
    }


def _sees_all_companies(user):
    """Staff scoped to no company hold no django-q2 permission (exports.auth_backends)."""
    user.user_permissions.add(Permission.objects.get(codename="view_all_companies"))


@pytest.fixture
def scheduler_client(client):
    """A staff user who holds add_schedule (but is not a superuser)."""
    user = User.objects.create(username="planner", is_staff=True)  # no password: no hashing
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="django_q",
            codename__in=["add_schedule", "change_schedule", "view_schedule"],
        )
    )
    _sees_all_companies(user)
    client.force_login(user)
    return client


# --- The admin form --------------------------------------------------------------------------


def test_the_schedule_admin_is_the_restricted_one():
    assert isinstance(admin.site._registry[Schedule].form(), ScheduleForm)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"func": "os.system", "args": "'touch /tmp/pwned'"}, id="any-function"),
        pytest.param({"func": "django.core.management.call_command"}, id="a-django-function"),
        pytest.param({"hook": "os.system"}, id="hook"),
        pytest.param({"kwargs": "{'hook': 'os.system'}"}, id="hook-as-kwarg"),
        pytest.param({"kwargs": "q_options={'hook': 'os.system'}"}, id="q-options"),
        pytest.param({"kwargs": "sync=True"}, id="sync-option"),
        pytest.param({"intended_date_kwarg": "hook"}, id="intended-date-kwarg"),
        pytest.param({"args": "__import__('os').system('id')"}, id="args-not-literals"),
        pytest.param({"kwargs": "5"}, id="kwargs-not-a-dict"),
        pytest.param({"args": "1, 2"}, id="args-do-not-fit"),
    ],
)
def test_the_admin_refuses_what_is_not_a_product_task(scheduler_client, overrides):
    response = scheduler_client.post(ADD_URL, form_data(**overrides))
    assert response.status_code == 200  # the form again, with its errors
    assert response.context["adminform"].form.errors
    assert not Schedule.objects.exists()


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="poll-tick"),
        pytest.param({"func": "exports.tasks.maintenance"}, id="maintenance"),
        pytest.param(
            {"func": "exports.tasks.run_company_check", "args": "7, 'schedule'"}, id="with-args"
        ),
        pytest.param(
            {"func": "exports.tasks.run_company_check", "kwargs": "company_id=7, trigger='x'"},
            id="with-kwargs",
        ),
    ],
)
def test_the_admin_saves_a_product_task(scheduler_client, overrides):
    response = scheduler_client.post(ADD_URL, form_data(**overrides))
    assert response.status_code == 302, response.context["adminform"].form.errors
    schedule = Schedule.objects.get()
    assert schedule.func == overrides.get("func", "exports.tasks.poll_tick")
    assert schedule.hook is None


def test_the_function_is_a_choice_among_the_product_tasks(admin_client):
    page = admin_client.get(ADD_URL).content.decode()
    for path in TASK_FUNCTIONS:
        assert f'<option value="{path}">' in page
    assert '<select name="func"' in page and '<select name="hook"' in page


def test_every_task_the_product_queues_or_schedules_is_on_the_list():
    used = {dispatch.TASK, dispatch.BATCH_TASK, *(s["func"] for s in schedules_wanted().values())}
    assert used <= set(TASK_FUNCTIONS)
    for path in TASK_FUNCTIONS:
        assert callable(pydoc.locate(path)), path


# --- The system check ------------------------------------------------------------------------


def bad_schedules() -> list[Schedule]:
    due = timezone.now() - timedelta(minutes=1)
    return [
        Schedule.objects.create(name="evil", func="os.system", args="'id'", next_run=due),
        Schedule.objects.create(
            name="hooked", func="exports.tasks.poll_tick", hook="os.system", next_run=due
        ),
    ]


def test_the_system_check_names_stored_schedules_outside_the_list():
    call_command("ensure_schedules", verbosity=0)
    assert schedules_run_product_tasks(databases=["default"]) == []
    evil, hooked = bad_schedules()
    errors = schedules_run_product_tasks(databases=["default"])
    assert [error.id for error in errors] == ["exports.E010", "exports.E010"]
    assert f"'evil' (id {evil.pk})" in errors[0].msg and "'os.system'" in errors[0].msg
    assert f"'hooked' (id {hooked.pk})" in errors[1].msg and "hook 'os.system'" in errors[1].msg
    with pytest.raises(SystemCheckError, match="evil"):
        call_command("check", databases=["default"])
    # Without --database the check reads nothing (manage.py check, runserver, qcluster).
    assert schedules_run_product_tasks(databases=None) == []


@pytest.mark.subprocess
def test_the_system_check_passes_on_a_database_not_migrated_yet(tmp_path):
    env = processes.settings_env(DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    result = processes.run(processes.manage("check", "--database", "default"), env)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


# --- Queued tasks ----------------------------------------------------------------------------


def orm_broker():
    """The ORM broker whatever ``REDIS_URL`` says: these tests read the queue's rows (and a task
    left in a shared Redis would reach another test's worker)."""
    from django_q.brokers.orm import ORM
    from django_q.conf import Conf

    return ORM(list_key=Conf.CLUSTER_NAME)


def queued_packages() -> list[dict]:
    return [SignedPackage.loads(row.payload) for row in OrmQ.objects.order_by("pk")]


def test_a_queued_task_outside_the_list_is_sent_as_a_refusal(caplog):
    async_task("os.system", "id", hook="shutil.rmtree", task_name="sneaky", broker=orm_broker())
    (package,) = queued_packages()
    assert package["func"] == REFUSED_TASK
    assert package["args"] == ("os.system",) and package["kwargs"] == {}
    assert "hook" not in package
    assert "Refused to run 'os.system'" in caplog.text
    refused = pydoc.locate(package["func"])
    with pytest.raises(Exception, match="'os.system' is not one of the product's task functions"):
        refused(*package["args"])


def test_a_product_task_is_sent_unchanged_without_a_foreign_hook(caplog):
    async_task("exports.tasks.poll_tick", hook="os.system", broker=orm_broker())
    (package,) = queued_packages()
    assert package["func"] == "exports.tasks.poll_tick"
    assert "hook" not in package
    assert "Hook 'os.system'" in caplog.text


def test_the_scheduler_refuses_a_bad_row_and_still_runs_the_good_ones(monkeypatch):
    # The scheduler closes "old" connections first: not the test's, inside its transaction.
    monkeypatch.setattr("django_q.scheduler.close_old_django_connections", lambda: None)
    call_command("ensure_schedules", verbosity=0)
    Schedule.objects.update(next_run=timezone.now() - timedelta(minutes=1))
    bad_schedules()
    scheduler(broker=orm_broker())
    funcs = sorted(package["func"] for package in queued_packages())
    assert funcs == sorted(
        [
            REFUSED_TASK,
            "exports.tasks.maintenance",
            "exports.tasks.poll_tick",
            "exports.tasks.poll_tick",
            "exports.tasks.xero_sync_daily",
        ]
    )
    assert all("hook" not in package for package in queued_packages())


# --- Stored tasks: resubmit ------------------------------------------------------------------


def action_names(response) -> list[str]:
    return [name for name, _label in response.context["action_form"].fields["action"].choices]


@pytest.mark.parametrize("model", [Success, Failure])
def test_resubmitting_stored_tasks_is_for_superusers(model, admin_client):
    now = timezone.now()
    task_id = "a" * 32
    model.objects.create(
        id=task_id,
        name="t",
        func="exports.tasks.poll_tick",
        started=now,
        stopped=now,
        success=model is Success,
    )
    name = model._meta.model_name
    url = reverse(f"admin:django_q_{name}_changelist")
    assert "resubmit_task" in action_names(admin_client.get(url))

    clerk = User.objects.create(username="clerk", is_staff=True)
    clerk.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="django_q", codename__endswith=f"_{name}"
        )
    )
    _sees_all_companies(clerk)
    staff = Client()
    staff.force_login(clerk)
    page = staff.get(url)
    assert page.status_code == 200
    assert "resubmit_task" not in action_names(page)
    staff.post(url, {"action": "resubmit_task", "_selected_action": [task_id]})
    assert not OrmQ.objects.exists()  # nothing queued
    change = staff.get(reverse(f"admin:django_q_{name}_change", args=[task_id]))
    assert change.status_code == 200
    assert 'name="_save"' not in change.content.decode()  # read-only: saving calls the hook


@pytest.mark.skipif(
    OrmQ not in django_admin.site._registry,
    reason="django-q2 registers its queue admin only with the ORM broker (REDIS_URL is set)",
)
def test_the_orm_queue_is_changed_by_superusers_only(admin_client):
    async_task("exports.tasks.poll_tick", broker=orm_broker())
    row = OrmQ.objects.get()
    url = reverse("admin:django_q_ormq_change", args=[row.pk])
    assert 'name="_save"' in admin_client.get(url).content.decode()
    clerk = User.objects.create(username="clerk", is_staff=True)
    clerk.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="django_q", codename__endswith="_ormq")
    )
    _sees_all_companies(clerk)
    staff = Client()
    staff.force_login(clerk)
    page = staff.get(url)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    staff.post(url, {"key": "another-cluster", "lock": "2000-01-01 00:00:00"})
    assert OrmQ.objects.get().key == row.key
