"""The Xero tests' fixtures."""

from tests.xero.support import xero_settings  # noqa: F401
