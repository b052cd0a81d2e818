"""The migration history: the models need no new migration, and a database stopped part-way through
the squashed migrations 0001–0010 is told what to do instead of failing inside Django."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from exports.checks import SQUASHED_MIGRATIONS, migrations_not_stopped_inside_squash

pytestmark = pytest.mark.django_db


def test_the_models_need_no_migration_that_is_not_there():
    out = StringIO()
    call_command("makemigrations", "exports", check=True, dry_run=True, stdout=out)
    assert "No changes detected" in out.getvalue()


def test_the_squash_replaces_exactly_the_old_chain_and_0011_follows_it():
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connection)
    squash = loader.disk_migrations["exports", "0001_initial_to_delivery_states"]
    assert squash.replaces == [("exports", name) for name in SQUASHED_MIGRATIONS]
    following = loader.disk_migrations["exports", "0011_receipts_xero_settlement"]
    assert ("exports", "0001_initial_to_delivery_states") in following.dependencies


def _recorded(names):
    recorder = MigrationRecorder(connection)
    recorder.migration_qs.filter(app="exports").delete()
    for name in names:
        recorder.record_applied("exports", name)


@pytest.mark.parametrize(
    "applied, refused",
    [
        ((), False),  # a new database: the squash applies
        (SQUASHED_MIGRATIONS, False),  # every old step applied: the squash counts as applied
        (SQUASHED_MIGRATIONS[:5], True),  # stopped at 0005: cannot go on from this checkout
        (SQUASHED_MIGRATIONS[:1], True),
    ],
)
def test_a_database_stopped_inside_the_squash_is_told_which_commit_to_migrate_at(applied, refused):
    _recorded(applied)
    errors = migrations_not_stopped_inside_squash(databases=["default"])
    assert [e.id for e in errors] == (["exports.E011"] if refused else [])
    if refused:
        assert applied[-1] in errors[0].msg
        assert "886d90a" in errors[0].hint
    assert migrations_not_stopped_inside_squash(databases=None) == []
