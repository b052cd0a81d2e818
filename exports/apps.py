from django.apps import AppConfig


class ExportsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "exports"
    verbose_name = "Pleo exports"

    def ready(self):
        from exports import checks, signals  # noqa: F401  (registers receivers and checks)
        from exports.notifications import checks as _notification_checks  # noqa: F401
