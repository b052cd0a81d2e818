"""System checks: refuse to run quietly with a django-q2 configuration that runs tasks twice, or
to migrate a database stopped part-way through the migrations that were squashed."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError, connections
from django.db.migrations.recorder import MigrationRecorder

# exports' migrations 0001–0010 live on as 0001_initial_to_delivery_states. The last commit that
# has them, for a database stopped part-way through them.
SQUASHED_MIGRATIONS = (
    "0001_initial",
    "0002_export_lifecycle",
    "0003_request_budget",
    "0004_company_check_picked_queued_at",
    "0005_company_membership_and_view_all_companies",
    "0006_company_unknown_job_status",
    "0007_notifications",
    "0008_credential_oauth_base_url_and_connection_check",
    "0009_failing_state",
    "0010_delivery_states_rejections_payload_time",
)
LAST_COMMIT_WITH_SQUASHED_MIGRATIONS = "886d90a"


@register()
def q_cluster_settings(app_configs, **kwargs):
    conf = settings.Q_CLUSTER
    problems = []
    timeout, retry = conf.get("timeout"), conf.get("retry", 60)
    if not timeout:
        problems.append(
            Warning(
                "Q_CLUSTER has no 'timeout': a stuck task would hold a worker forever.",
                id="exports.W001",
            )
        )
    elif retry <= timeout:
        problems.append(
            Warning(
                f"Q_CLUSTER 'retry' ({retry}s) is not above 'timeout' ({timeout}s): the broker "
                f"re-delivers a task that is still running, so one check runs twice.",
                hint="Set retry clearly above timeout (the default is timeout + 300 s).",
                id="exports.W002",
            )
        )
    if conf.get("catch_up", True):
        problems.append(
            Warning(
                "Q_CLUSTER 'catch_up' is on: after a scheduler outage every missed poll runs "
                "at once (a burst against Pleo's rate limit).",
                id="exports.W003",
            )
        )
    if not conf.get("max_attempts"):
        problems.append(
            Warning(
                "Q_CLUSTER 'max_attempts' is 0 (retry forever): a failing task loops.",
                id="exports.W004",
            )
        )
    return problems


@register(Tags.database)
def migrations_not_stopped_inside_squash(app_configs=None, databases=None, **kwargs):
    """A database that applied some but not all of the squashed migrations cannot go on from here
    (Django would fail with a KeyError while building the schema state): say what to do."""
    errors = []
    for alias in databases or ():
        try:
            recorder = MigrationRecorder(connections[alias])
            if not recorder.has_table():
                continue
            applied = {name for app, name in recorder.applied_migrations() if app == "exports"}
        except DatabaseError:
            continue  # the database checks report that
        done = [name for name in SQUASHED_MIGRATIONS if name in applied]
        if done and len(done) < len(SQUASHED_MIGRATIONS):
            errors.append(
                Error(
                    f"Database {alias!r} stopped part-way through exports' migrations 0001–0010 "
                    f"(last applied: {done[-1]}); they are now one migration, "
                    "0001_initial_to_delivery_states, which such a database cannot use.",
                    hint=(
                        f"Check out commit {LAST_COMMIT_WITH_SQUASHED_MIGRATIONS} (the last with "
                        "the separate migrations), run `python manage.py migrate` there, then "
                        "come back to this checkout and migrate again."
                    ),
                    id="exports.E011",
                )
            )
    return errors
