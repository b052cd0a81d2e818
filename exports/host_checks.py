"""System checks: the Pleo URL settings must name hosts Pleo credentials may be sent to, and
(``manage.py check --database default``, e.g. after an upgrade) so must stored credentials."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from exports.pleo import hosts


@register()
def pleo_hosts_settings(app_configs, **kwargs):
    problems = []
    for entry in settings.PLEO_ALLOWED_HOSTS:
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
        problem = policy.problem(getattr(settings, name))
        if problem:
            problems.append(
                Error(
                    f"{name} is refused: {problem}. Pleo credentials would be sent there.",
                    hint="Use Pleo's https URL, or add its exact host to PLEO_ALLOWED_HOSTS.",
                    id="exports.E102",
                )
            )
    return problems


@register(Tags.database)
def stored_credential_urls(app_configs, databases=None, **kwargs):
    """Rows stored before the allow-list (or by a shell): each such credential fails its runs
    until fixed; say so before the first run does."""
    if not databases or "default" not in databases:
        return []
    from django.db import DatabaseError, connections

    from exports.models import Credential

    try:
        # ``migrate`` runs database checks before it migrates: a fresh database has no table.
        if Credential._meta.db_table not in connections["default"].introspection.table_names():
            return []
        stored = [
            (pk, name, label, url)
            for column, label in (("api_base_url", "API"), ("oauth_base_url", "OAuth"))
            for pk, name, url in Credential.objects.exclude(**{column: ""})
            .order_by("pk")
            .values_list("pk", "name", column)
        ]
    except DatabaseError:  # not migrated far enough: nothing stored to warn about yet
        return []
    policy = hosts.policy_from_settings()
    problems = []
    for pk, name, label, url in stored:
        problem = policy.problem(url)
        if problem:
            problems.append(
                Warning(
                    f"Credential {pk} ({name}): its {label} base URL is refused ({problem}); its "
                    f"companies' checks fail until it is fixed.",
                    hint=f"Fix the {label} base URL on the credential's admin page and enter its "
                    "secret again.",
                    id="exports.W101",
                )
            )
    return problems
