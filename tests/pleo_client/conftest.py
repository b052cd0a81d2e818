"""Fixtures of the Pleo client tests: ``http`` (`responses`, every registered answer must be
used), ``sleeps`` (the client's ``sleep``: nothing waits), ``make_client`` and ``client``."""

from __future__ import annotations

import pytest
import responses

from exports.pleo import ApiKeyAuth, ClientConfig, PleoClient
from tests import secrets_registry
from tests.client_fakes import NOW, URL


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def api_key():
    return secrets_registry.new_api_key()


@pytest.fixture
def make_client(sleeps, api_key):
    clients = []

    def make(
        *,
        auth=None,
        rng=lambda: 0.5,
        clock=lambda: NOW,
        on_auth_failure=None,
        session=None,
        request_id="run-1",
        base_url=URL,
        **config,
    ):
        client = PleoClient(
            config=ClientConfig(base_url=base_url, **config),
            auth=auth or ApiKeyAuth(api_key),
            request_id=request_id,
            on_auth_failure=on_auth_failure,
            session=session,
            sleep=sleeps.append,
            rng=rng,
            clock=clock,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client):
    return make_client()
