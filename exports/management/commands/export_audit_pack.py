"""``export_audit_pack <pleo job id> --output FILE``: write one job's audit pack (a ZIP, see
``exports.receipts.pack``). Exit 0 when written, 2 for an unknown job or a usage error, 1 when
FILE cannot be written.

For an operator on the server: it sees every company (the admin's button is the scoped way).
The file is written next to FILE first and moved into place, so FILE is never left half written.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from exports.models import ExportJob
from exports.receipts.pack import audit_pack_write


class Command(BaseCommand):
    help = "Write an export job's audit pack (manifest, receipts, journal CSV) as one ZIP."

    def add_arguments(self, parser):
        parser.add_argument("job_id", metavar="PLEO_JOB_ID", help="Pleo's export job id.")
        parser.add_argument("--output", required=True, metavar="FILE", help="The ZIP to write.")

    def handle(self, *args, **options):
        try:
            job_id = uuid.UUID(options["job_id"])
        except ValueError:
            raise CommandError(f"{options['job_id']!r} is not a job id (a UUID).", returncode=2)
        job = ExportJob.objects.select_related("company").filter(pleo_job_id=job_id).first()
        if job is None:
            raise CommandError(f"No export job {job_id} is known here.", returncode=2)
        target = Path(options["output"])
        try:
            handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        except OSError as exc:
            raise CommandError(f"Cannot write into {target.parent}: {exc.strerror}.") from None
        try:
            with os.fdopen(handle, "wb") as out:
                summary = audit_pack_write(job=job, out=out)
            os.chmod(partial, 0o644)
            os.replace(partial, target)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        missing = summary.missing_receipts
        missing = f", {missing} missing from the archive" if missing else ""
        self.stdout.write(
            f"Wrote {target}: {summary.items} items, {summary.receipts} receipt files{missing}, "
            f"{summary.audit_entries} audit entries."
        )
