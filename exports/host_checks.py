"""System checks: the Pleo (and Xero) URL settings must name hosts their credentials may be sent
to, and
(``manage.py check --database default``, e.g. after an upgrade) so must stored credentials."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from exports.pleo import hosts
from exports.xero import hosts as xero_hosts


def _allow_list_problems(policy, entries, url_settings, *, example: str, ids: tuple[str, str]):
    """An allow-list whose entries can never match, and URL settings it refuses."""
    problems = []
    for entry in entries:
        problem = hosts.host_entry_problem(entry)
        if problem:
            problems.append(
                Error(
                    f"{policy.setting}: {problem}; it would never match.",
                    hint=f"List bare host names, comma-separated: {example}",
                    id=ids[0],
                )
            )
    for name in url_settings:
        problem = policy.problem(getattr(settings, name, ""))
        if problem:
            problems.append(
                Error(
                    f"{name} is refused: {problem}. {policy.service} credentials would be sent "
                    f"there.",
                    hint=f"Use {policy.service}'s https URL, or add its exact host to "
                    f"{policy.setting}.",
                    id=ids[1],
                )
            )
    return problems


@register()
def pleo_hosts_settings(app_configs, **kwargs):
    return _allow_list_problems(
        hosts.policy_from_settings(),
        settings.PLEO_ALLOWED_HOSTS,
        ("PLEO_API_BASE_URL", "PLEO_OAUTH_BASE_URL"),
        example="external.pleo.io,auth.pleo.io",
        ids=("exports.E101", "exports.E102"),
    )


@register()
def xero_hosts_settings(app_configs, **kwargs):
    """The same for Xero: its tokens and client secret go only to ``XERO_ALLOWED_HOSTS``."""
    return _allow_list_problems(
        xero_hosts.policy_from_settings(),
        settings.XERO_ALLOWED_HOSTS,
        ("XERO_API_BASE_URL", "XERO_IDENTITY_BASE_URL", "XERO_LOGIN_BASE_URL"),
        example="api.xero.com,identity.xero.com,login.xero.com",
        ids=("exports.E103", "exports.E104"),
    )


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
