"""Where Pleo credentials may be sent: the one rule, used by every door a URL comes in by.

An API key, an OAuth client secret, an access or refresh token is only ever sent to a host named
in ``PLEO_ALLOWED_HOSTS`` (exact names; by default Pleo's production and staging API and OAuth
hosts), over ``https`` on the default port. Loopback (``localhost``, ``127.0.0.0/8``, ``::1``,
any port, ``http`` too) is allowed only when ``PLEO_ALLOW_LOOPBACK`` is on, which the settings
derive from ``DEBUG`` or ``PLEO_SANDBOX`` (the local sandbox).

The same check runs where a URL is entered (the credential admin form, ``add_company``, a system
check of the ``PLEO_*_BASE_URL`` settings) and again in the HTTP clients before every request
(:mod:`exports.pleo.transport`, :mod:`exports.pleo.oauth`), so a URL stored by any other way (an
old row, a shell, a fixture) is refused before a connection is opened.

Exact means exact: no suffix or subdomain matching (``external.pleo.io.evil.example``), no user
name or password in the URL (``https://external.pleo.io@evil.example``), no trailing dot, no
backslash, no whitespace or control character, no query or fragment, and the host as Python's
``urllib.parse`` reads it must be the host urllib3 (what ``requests`` connects to) reads.

The rule is the same for every service whose credentials we hold: a :class:`HostPolicy` names
its service and its settings (``service``, ``setting``), and :func:`policy_from_settings` reads
any ``<PREFIX>_ALLOWED_HOSTS``/``<PREFIX>_ALLOW_LOOPBACK`` pair (Xero's: ``exports.xero.hosts``).

This module imports nothing from Django but the settings, and those only in
:func:`policy_from_settings`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from urllib3.util import parse_url

DEFAULT_ALLOWED_HOSTS = (
    "external.pleo.io",
    "external.staging.pleo.io",
    "auth.pleo.io",
    "auth.staging.pleo.io",
)
LOOPBACK_NAMES = frozenset({"localhost"})
_DEFAULT_PORTS = {"https": 443, "http": 80}


class HostNotAllowed(ValueError):
    """A URL that Pleo credentials must not be sent to. The message says why (never a secret:
    a URL with a user name or password is not repeated)."""


def is_loopback(host: str) -> bool:
    """``localhost``, an IPv4 address in 127.0.0.0/8 or ``::1`` (written out in full only)."""
    host = host.lower().strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalise_hosts(hosts: Iterable[str]) -> frozenset[str]:
    return frozenset(h.strip().lower() for h in hosts if h and h.strip())


def host_entry_problem(entry: str) -> str | None:
    """Why an entry of ``PLEO_ALLOWED_HOSTS`` can never match (it is a URL, has a port…)."""
    value = entry.strip().lower()
    if not value:
        return None
    if any(c in value for c in "/:@?#\\*") or any(c.isspace() for c in value):
        return f"'{entry}' is not a bare host name (no scheme, port, path or wildcard)"
    if value.endswith("."):
        return f"'{entry}' ends with a dot"
    return None


@dataclass(frozen=True)
class HostPolicy:
    """The allow-list: exact host names, and whether loopback is allowed."""

    allowed_hosts: frozenset[str]
    allow_loopback: bool = False
    # Whose credentials, and which settings: for the messages only.
    service: str = "Pleo"
    setting: str = "PLEO_ALLOWED_HOSTS"
    loopback_condition: str = "DEBUG or PLEO_SANDBOX (the local sandbox)"

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_hosts", normalise_hosts(self.allowed_hosts))

    def problem(self, url: str) -> str | None:
        """Why ``url`` may not receive this service's credentials, or None when it may."""
        return url_problem(url, self)

    def check(self, url: str) -> str:
        """``url`` unchanged when allowed; :class:`HostNotAllowed` otherwise."""
        problem = self.problem(url)
        if problem:
            raise HostNotAllowed(problem)
        return url


DEFAULT_POLICY = HostPolicy(allowed_hosts=frozenset(DEFAULT_ALLOWED_HOSTS), allow_loopback=False)


def policy_from_settings(
    prefix: str = "PLEO",
    *,
    default: HostPolicy = DEFAULT_POLICY,
) -> HostPolicy:
    """``<prefix>_ALLOWED_HOSTS`` and ``<prefix>_ALLOW_LOOPBACK``, read now (tests override
    them); ``default`` (its hosts, service name and messages) when a setting is absent."""
    from django.conf import settings

    if not settings.configured:
        return default
    return HostPolicy(
        allowed_hosts=frozenset(
            getattr(settings, f"{prefix}_ALLOWED_HOSTS", default.allowed_hosts)
        ),
        allow_loopback=bool(getattr(settings, f"{prefix}_ALLOW_LOOPBACK", False)),
        service=default.service,
        setting=default.setting,
        loopback_condition=default.loopback_condition,
    )


def check_pleo_url(url: str, policy: HostPolicy | None = None) -> str:
    """:meth:`HostPolicy.check` with the settings' policy unless one is given."""
    return (policy or policy_from_settings()).check(url)


def _safe_shown(url: str) -> str:
    """The URL for a message: short, and never with what looks like a password in it."""
    shown = url if "@" not in url else "the URL"
    return shown if len(shown) <= 120 else shown[:117] + "..."


def url_problem(url: str, policy: HostPolicy) -> str | None:
    """The rule of the module docstring. Returns a one-line reason, or None when allowed."""
    if not isinstance(url, str) or not url.strip():
        return "no URL is given"
    shown = _safe_shown(url)
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url) or "\\" in url:
        return f"{shown} contains whitespace, a control character or a backslash"
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return f"{shown} is not a valid URL"
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        return f"{shown} must start with https:// (not {scheme + '://' if scheme else 'nothing'})"
    if "@" in parts.netloc:
        return "the URL must not contain a user name or password"
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return f"{shown} must not have a query (?) or fragment (#)"
    if not host:
        return f"{shown} names no host"
    try:
        seen_by_urllib3 = (parse_url(url).host or "").lower().strip("[]")
    except ValueError:
        return f"{shown} is not a valid URL"
    if seen_by_urllib3 != host:
        return f"{shown} is ambiguous (its host reads differently to the HTTP library)"
    if is_loopback(host):
        if not policy.allow_loopback:
            return f"{host} is a loopback address: allowed only with {policy.loopback_condition}"
        return None
    if host not in policy.allowed_hosts:
        return (
            f"{host} is not a {policy.service} host ({policy.service} credentials only go to "
            f"{policy.setting})"
        )
    if scheme != "https":
        return f"{shown} must use https:// (plain http:// is allowed only to loopback)"
    if port is not None and port != _DEFAULT_PORTS["https"]:
        return f"{shown} must not name a port ({policy.service} hosts are reached on 443)"
    return None


__all__ = [
    "DEFAULT_ALLOWED_HOSTS",
    "DEFAULT_POLICY",
    "HostNotAllowed",
    "HostPolicy",
    "check_pleo_url",
    "host_entry_problem",
    "is_loopback",
    "policy_from_settings",
    "url_problem",
]
