"""Shared fixtures. Fixture modules live in tests/fixtures/ and are loaded as plugins here."""

pytest_plugins = [
    "tests.fixtures.sandbox",
]
