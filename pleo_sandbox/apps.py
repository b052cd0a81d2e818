from django.apps import AppConfig


class PleoSandboxConfig(AppConfig):
    name = "pleo_sandbox"
    verbose_name = "Pleo sandbox"
