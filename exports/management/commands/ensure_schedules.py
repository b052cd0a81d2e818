from django.core.management.base import BaseCommand

from exports.services.schedules import schedules_ensure, schedules_wanted


class Command(BaseCommand):
    help = "Create or update the polling and maintenance schedules by name (never duplicated)."

    def handle(self, *args, **options):
        changes = schedules_ensure()
        for change in changes:
            self.stdout.write(change)
        if not changes:
            names = ", ".join(schedules_wanted())
            self.stdout.write(f"Schedules up to date: {names}.")
