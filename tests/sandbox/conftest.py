"""Fixtures for the sandbox's own tests (helpers live in tests/sandbox/helpers.py)."""

from __future__ import annotations

import pytest

from tests.sandbox.helpers import Api, Receiver, Sandbox, check_logged_responses


@pytest.fixture
def sb(pleo_sandbox):
    """The sandbox with one company ("Acme ApS", DKK), its API key and a client using it.

    After the test, every API response the sandbox logged is validated against the spec.
    """
    state = pleo_sandbox.state
    company = state.add_company("Acme ApS", currency="DKK")
    key = state.add_api_key(company.id)
    api = Api(pleo_sandbox.url, key)
    yield Sandbox(pleo_sandbox, pleo_sandbox.url, state, company, key, api)
    api.close()
    check_logged_responses(state)


@pytest.fixture
def receiver():
    created: list[Receiver] = []

    def make(statuses: list[int] | None = None, delay: float = 0.0) -> Receiver:
        r = Receiver(statuses, delay)
        created.append(r)
        return r

    yield make
    for r in created:
        r.stop()
