from django.core.management.base import BaseCommand

from exports.services.schedules import ensure_schedules, wanted_schedules


class Command(BaseCommand):
    help = "Create or update the polling and maintenance schedules by name (never duplicated)."

    def handle(self, *args, **options):
        changes = ensure_schedules()
        for change in changes:
            self.stdout.write(change)
        if not changes:
            names = ", ".join(wanted_schedules())
            self.stdout.write(f"Schedules up to date: {names}.")
