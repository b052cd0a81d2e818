"""Secrets made by tests (API keys, tokens, webhook secrets, signatures), checked against logs."""

import secrets as _secrets

_ALWAYS: set[str] = set()
_CURRENT: set[str] = set()


def start_test() -> None:
    _CURRENT.clear()


def register(value: str) -> str:
    if value:
        _CURRENT.add(value)
    return value


def current() -> set[str]:
    return _CURRENT | _ALWAYS


def new_api_key() -> str:
    return register(f"pk_test_{_secrets.token_urlsafe(24)}")
