"""Where Xero credentials may be sent: the allow-list rule of :mod:`exports.pleo.hosts`, with
Xero's hosts and settings (``XERO_ALLOWED_HOSTS``, ``XERO_ALLOW_LOOPBACK``)."""

from __future__ import annotations

from exports.pleo import hosts
from exports.pleo.hosts import HostNotAllowed, HostPolicy

DEFAULT_ALLOWED_HOSTS = ("api.xero.com", "identity.xero.com", "login.xero.com")
DEFAULT_POLICY = HostPolicy(
    allowed_hosts=frozenset(DEFAULT_ALLOWED_HOSTS),
    allow_loopback=False,
    service="Xero",
    setting="XERO_ALLOWED_HOSTS",
    loopback_condition="DEBUG, PLEO_SANDBOX or XERO_SANDBOX (the local sandbox)",
)


def policy_from_settings() -> HostPolicy:
    return hosts.policy_from_settings("XERO", default=DEFAULT_POLICY)


def check_xero_url(url: str) -> str:
    return policy_from_settings().check(url)


__all__ = ["DEFAULT_POLICY", "HostNotAllowed", "check_xero_url", "policy_from_settings"]
