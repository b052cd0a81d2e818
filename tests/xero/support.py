"""Shared by the Xero tests: settings, Xero's answers (shapes of docs/xero-openapi/) and a
connected company."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest

from exports import clock, crypto
from exports.models import XeroConnection
from tests import secrets_registry
from tests.factories import make_company

API = "https://api.xero.com"
IDENTITY = "https://identity.xero.com"
LOGIN = "https://login.xero.com"
TOKEN_URL = f"{IDENTITY}/connect/token"
ACCOUNTING = f"{API}/api.xro/2.0"
SCOPES = (
    "accounting.manualjournals accounting.invoices accounting.contacts "
    "accounting.settings.read accounting.attachments offline_access"
)
TENANT = uuid.UUID("11111111-2222-3333-4444-555555555555")
CLIENT_ID = "XEROCLIENTID0001"


@pytest.fixture
def xero_settings(settings, fresh_budget):
    """Xero's settings pointing at the hosts ``responses`` answers for, and the request budget in
    the database (rolled back with the test): every test connects the same ``TENANT``, so with the
    Redis budget (``REDIS_URL`` set) one test's calls would spend the next one's minute, and
    another run's on the same Redis database. A test of the Redis budget sets it back."""
    settings.PLEO_RATE_LIMIT_BACKEND = "database"
    settings.XERO_CLIENT_ID = CLIENT_ID
    settings.XERO_CLIENT_SECRET = secrets_registry.register("xero-client-secret-7f3a9c")
    settings.XERO_API_BASE_URL = API
    settings.XERO_IDENTITY_BASE_URL = IDENTITY
    settings.XERO_LOGIN_BASE_URL = LOGIN
    settings.XERO_SCOPES = SCOPES
    settings.PUBLIC_BASE_URL = "http://testserver"
    return settings


def connections_body(*tenants: tuple[uuid.UUID, str]) -> list[dict]:
    return [
        {
            "id": str(uuid.uuid4()),
            "authEventId": str(uuid.uuid4()),
            "tenantId": str(tenant),
            "tenantType": "ORGANISATION",
            "tenantName": name,
            "createdDateUtc": "2026-12-01T10:00:00.0000000",
            "updatedDateUtc": "2026-12-01T10:00:00.0000000",
        }
        for tenant, name in tenants
    ]


def organisation_body(name="Demo Company (UK)", currency="GBP") -> dict:
    return {
        "Organisations": [
            {
                "OrganisationID": str(uuid.uuid4()),
                "Name": name,
                "BaseCurrency": currency,
                "CountryCode": "GB",
            }
        ]
    }


def accounts_body(*accounts: tuple[str, str, str]) -> dict:
    """(code, name, status) each."""
    return {
        "Accounts": [
            {
                "AccountID": str(uuid.uuid5(TENANT, code)),
                "Code": code,
                "Name": name,
                "Type": "EXPENSE",
                "Status": status,
                "TaxType": "INPUT2",
            }
            for code, name, status in accounts
        ]
    }


def tax_rates_body(*rates: tuple[str, str, str]) -> dict:
    return {
        "TaxRates": [
            {"Name": name, "TaxType": tax_type, "Status": status, "EffectiveRate": 20.0}
            for tax_type, name, status in rates
        ]
    }


def tracking_body(category: str, *options: str) -> dict:
    return {
        "TrackingCategories": [
            {
                "TrackingCategoryID": str(uuid.uuid5(TENANT, category)),
                "Name": category,
                "Status": "ACTIVE",
                "Options": [
                    {
                        "TrackingOptionID": str(uuid.uuid5(TENANT, f"{category}/{o}")),
                        "Name": o,
                        "Status": "ACTIVE",
                    }
                    for o in options
                ],
            }
        ]
    }


def mock_settings_reads(responses_mock, *, accounts=None, currency="GBP") -> None:
    """Organisation, Accounts, TaxRates and TrackingCategories of one organisation."""
    responses_mock.get(f"{ACCOUNTING}/Organisation", json=organisation_body(currency=currency))
    responses_mock.get(
        f"{ACCOUNTING}/Accounts",
        json=accounts_body(
            *(accounts or [("6100", "Travel", "ACTIVE"), ("6200", "Meals", "ARCHIVED")])
        ),
    )
    responses_mock.get(
        f"{ACCOUNTING}/TaxRates",
        json=tax_rates_body(("INPUT2", "20% (VAT on Expenses)", "ACTIVE")),
    )
    responses_mock.get(
        f"{ACCOUNTING}/TrackingCategories", json=tracking_body("Department", "Sales")
    )


def token_answer(access="xat-new-0001", refresh="xrt-new-0001", scope=SCOPES) -> dict:
    secrets_registry.register(access)
    secrets_registry.register(refresh)
    return {
        "access_token": access,
        "refresh_token": refresh,
        "expires_in": 1800,
        "token_type": "Bearer",
        "scope": scope,
    }


def make_connection(
    company=None, *, access="xat-0001", refresh="xrt-0001", expires_in=1800, scopes=SCOPES
) -> XeroConnection:
    company = company or make_company(name="Xero Ltd")
    return XeroConnection.objects.create(
        company=company,
        tenant_id=TENANT,
        tenant_name="Demo Company (UK)",
        scopes_granted=scopes,
        access_token_ciphertext=crypto.encrypt(secrets_registry.register(access)),
        refresh_token_ciphertext=crypto.encrypt(secrets_registry.register(refresh)),
        access_token_expires_at=clock.now() + timedelta(seconds=expires_in),
    )


class VirtualWaits:
    """The product's waits for Xero's limits (``XeroBudget.pause``: for our request budgets and
    for a 429's ``Retry-After``) move the clocks those limits run on instead of sleeping: our
    budgets' (the database budget's clock) and the local Xero's. So a run paced by Xero's real
    limits takes seconds, not minutes. The product's and Pleo's clocks are left alone (nothing
    of Pleo's is waited for). ``waits`` lists every sleep (at most 5 s each), in seconds.
    With ``xero_state`` ``None`` (no local Xero: ``responses`` answers) only our budgets' clock
    moves."""

    def __init__(self, xero_state=None) -> None:
        self.xero_state = xero_state
        self.offset = 0.0
        self.waits: list[float] = []

    def now(self) -> float:
        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.offset += seconds
        if self.xero_state is not None:
            self.xero_state.advance_clock(seconds)

    def install(self, monkeypatch, *, retry_after: bool = True) -> VirtualWaits:
        """From now on in this test (needs ``PLEO_RATE_LIMIT_BACKEND=database``, as ``bx``).
        ``retry_after=False``: only the waits for our budgets and Xero's remaining counts
        (``XeroBudget.wait``) are virtual; a 429's ``Retry-After`` is slept for real (the local
        Xero's in-flight limit runs on real time). Installing again widens it on the same clock."""
        from exports.services import budget, xero_connections

        budget._backends[(budget.Backend.DATABASE, "")] = budget.DatabaseBudget(now=self.now)
        self.waits.clear()  # the waits from here on
        if not retry_after:
            wait = xero_connections.XeroBudget.wait

            def virtual_wait(hook, *args, **kwargs):
                real, hook.sleep = hook.sleep, self.sleep
                try:
                    return wait(hook, *args, **kwargs)
                finally:
                    hook.sleep = real

            monkeypatch.setattr(xero_connections.XeroBudget, "wait", virtual_wait)
            return self
        init = xero_connections.XeroBudget.__init__

        def virtual(hook, *args, **kwargs):
            init(hook, *args, **{**kwargs, "sleep": self.sleep})

        monkeypatch.setattr(xero_connections.XeroBudget, "__init__", virtual)
        return self
