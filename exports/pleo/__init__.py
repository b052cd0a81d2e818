"""Pleo API access. Everything public lives in :mod:`exports.pleo.client`; re-exported here."""

from exports.pleo.client import *  # noqa: F403
from exports.pleo.client import __all__  # noqa: F401
