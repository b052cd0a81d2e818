from django.apps import AppConfig


class ExportsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "exports"
    verbose_name = "Pleo exports"

    def ready(self):
        # Registers receivers and checks; django-q2's admin and queue restricted to our tasks.
        from exports import checks, host_checks, signals, task_guard  # noqa: F401
        from exports.admin import schedules as _schedules_admin  # noqa: F401
        from exports.admin.timestamps import install as install_admin_timestamps
        from exports.notifications import checks as _notification_checks  # noqa: F401

        # Every timestamp in the admin with seconds, the zone and a relative time.
        install_admin_timestamps()
