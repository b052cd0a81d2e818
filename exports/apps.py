from django.apps import AppConfig


class ExportsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "exports"
    verbose_name = "Pleo exports"

    def ready(self):
        from exports import checks, host_checks, signals  # noqa: F401  (receivers, checks)
