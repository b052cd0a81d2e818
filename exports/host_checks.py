"""System checks: the Pleo URL settings must name hosts Pleo credentials may be sent to."""

from django.conf import settings
from django.core.checks import Error, register

from exports.pleo import hosts


@register()
def pleo_hosts_settings(app_configs, **kwargs):
    problems = []
    for entry in getattr(settings, "PLEO_ALLOWED_HOSTS", []):
        problem = hosts.host_entry_problem(entry)
        if problem:
            problems.append(
                Error(
                    f"PLEO_ALLOWED_HOSTS: {problem}; it would never match.",
                    hint="List bare host names, comma-separated: external.pleo.io,auth.pleo.io",
                    id="exports.E101",
                )
            )
    policy = hosts.policy_from_settings()
    for name in ("PLEO_API_BASE_URL", "PLEO_OAUTH_BASE_URL"):
        problem = policy.problem(getattr(settings, name, ""))
        if problem:
            problems.append(
                Error(
                    f"{name} is refused: {problem}. Pleo credentials would be sent there.",
                    hint="Use Pleo's https URL, or add its exact host to PLEO_ALLOWED_HOSTS.",
                    id="exports.E102",
                )
            )
    return problems
