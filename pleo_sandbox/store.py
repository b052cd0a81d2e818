"""The sandbox's store: its data and what every part of the domain shares.

One :class:`Store` per sandbox holds the entities (companies, organisations, credentials, jobs,
subscriptions, files), the one re-entrant lock every change happens under, the seeded id source,
the clock, the switches, the fault registry, the request log and the rate limiter.

Invariants:

* Callers hold :attr:`Store.lock` while they read or change the data; the methods here take it
  too, so a single call is safe on its own.
* Ids and secrets come from :attr:`Store.rng` (seeded), so a seed gives the same ids in the same
  order of calls.
* :meth:`reset_data` replaces the collections: never keep a reference to one across a reset.
* The store knows nothing of jobs' lifecycle, items, webhooks or OAuth: those parts
  (:mod:`pleo_sandbox.jobs`, :mod:`pleo_sandbox.items`, :mod:`pleo_sandbox.subscriptions`,
  :mod:`pleo_sandbox.oauth_store`) use it, never the other way round.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from pleo_sandbox import switches as switch_rules
from pleo_sandbox import variants
from pleo_sandbox.clock import SandboxClock
from pleo_sandbox.data import CompanyProfile, new_uuid
from pleo_sandbox.entities import (
    MSG_JOB_NOT_FOUND,
    Company,
    Credential,
    Job,
    Organisation,
    Subscription,
    scope_set,
)
from pleo_sandbox.errors import ApiError
from pleo_sandbox.faults import FaultRegistry
from pleo_sandbox.pagination import ordered, paginate
from pleo_sandbox.ratelimit import MSG_RATE_LIMITED, RateLimiter
from pleo_sandbox.ratelimit import key_for as rate_limit_key
from pleo_sandbox.requestlog import RequestLog


class Store:
    """The data, the lock, ids, clock, switches, faults, request log and rate limiter."""

    def __init__(self, seed: int | None = None, clock: SandboxClock | None = None) -> None:
        self.lock = threading.RLock()
        self.clock = clock or SandboxClock()
        self.seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
        self.faults = FaultRegistry()
        self.request_log = RequestLog()
        self.rate_limiter = RateLimiter()
        self.base_url = "http://127.0.0.1"
        # Set by the server on stop so stalled handlers wake up at once.
        self.stop_event = threading.Event()
        self.reset_data()

    def reset_data(self) -> None:
        """Empty collections, default switches, the id source restarted from the seed."""
        self.rng = random.Random(self.seed)
        self._switches: dict[str, Any] = switch_rules.defaults()
        self.companies: dict[str, Company] = {}
        self.organisations: dict[str, Organisation] = {}
        self.credentials: dict[str, Credential] = {}
        self._by_secret: dict[str, str] = {}
        self.jobs: dict[str, Job] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.files: dict[str, dict] = {}
        self._seq = 0

    def reset(self, seed: int | None = None) -> None:
        """Forget the data, switches, faults, request log, rate-limit windows and clock offset."""
        with self.lock:
            if seed is not None:
                self.seed = seed
            self.reset_data()
            self.rate_limiter.reset()
            self.faults.clear()
            self.request_log.clear()
            self.clock.set_offset(0)

    # -- ids and time --------------------------------------------------------------------------
    def next_seq(self) -> int:
        """A creation order shared by every entity."""
        with self.lock:
            self._seq += 1
            return self._seq

    def new_id(self) -> str:
        with self.lock:
            return new_uuid(self.rng)

    def now(self) -> datetime:
        return self.clock.now()

    # -- switches ------------------------------------------------------------------------------
    def switch(self, name: str) -> Any:
        """The current value of one switch (see :data:`pleo_sandbox.switches.DEFAULT_SWITCHES`)."""
        return self._switches[name]

    def switches(self) -> dict[str, Any]:
        with self.lock:
            return switch_rules.copy(self._switches)

    def set_switches(self, **values: Any) -> None:
        """Change switches one by one; the first refused name or value raises ``ValueError``."""
        with self.lock:
            for name, value in values.items():
                self._switches[name] = switch_rules.checked(name, value)

    def reset_switches(self) -> None:
        with self.lock:
            self._switches = switch_rules.defaults()

    def spelling(self) -> str:
        """How the job-created event type is spelled (the ``event_type_spelling`` switch)."""
        return self._switches["event_type_spelling"]

    def error_body(self, body: Any) -> Any:
        """An error answer's body as sent (the ``error_type_case`` switch)."""
        return variants.with_error_case(body, self._switches["error_type_case"])

    # -- companies and organisations -----------------------------------------------------------
    def company(self, company_id: str) -> Company:
        """The company (any spelling of its UUID); ``ValueError`` if there is none."""
        try:
            return self.companies[str(uuid.UUID(str(company_id)))]
        except (KeyError, ValueError):
            raise ValueError(f"unknown company {company_id}")

    def organisation(self, organisation_id: str | None) -> Organisation | None:
        return self.organisations.get(organisation_id or "")

    def add_company(
        self,
        name: str | None = None,
        *,
        currency: str = "DKK",
        company_id: str | None = None,
        organisation_id: str | None = None,
        contra_accounts_configured: bool = True,
    ) -> Company:
        with self.lock:
            cid = str(uuid.UUID(company_id)) if company_id else self.new_id()
            if cid in self.companies:
                raise ValueError(f"company {cid} exists")
            if organisation_id is not None and organisation_id not in self.organisations:
                raise ValueError(f"unknown organisation {organisation_id}")
            profile = CompanyProfile.generate(random.Random(f"{self.seed}/company/{cid}"), currency)
            company = Company(
                id=cid,
                name=name or f"Sandbox Company {len(self.companies) + 1}",
                currency=currency,
                profile=profile,
                organisation_id=organisation_id,
                contra_accounts_configured=contra_accounts_configured,
            )
            self.companies[cid] = company
            if organisation_id is not None:
                self.organisations[organisation_id].company_ids.append(cid)
            return company

    def update_company(self, company_id: str, *, contra_accounts_configured: bool) -> Company:
        with self.lock:
            company = self.company(company_id)
            company.contra_accounts_configured = contra_accounts_configured
            return company

    def add_organisation(
        self,
        name: str | None = None,
        *,
        company_ids: Iterable[str] = (),
        n_companies: int = 0,
        currency: str = "DKK",
    ) -> Organisation:
        """An organisation holding ``company_ids`` plus ``n_companies`` new companies."""
        with self.lock:
            org = Organisation(
                id=self.new_id(),
                name=name or f"Sandbox Organisation {len(self.organisations) + 1}",
                company_ids=[],
            )
            self.organisations[org.id] = org
            for cid in company_ids:
                company = self.company(cid)
                company.organisation_id = org.id
                org.company_ids.append(company.id)
            for _ in range(n_companies):
                self.add_company(currency=currency, organisation_id=org.id)
            return org

    def owned_companies(
        self,
        company_id: str | None,
        company_ids: Iterable[str] | None,
        organisation_id: str | None,
        *,
        owner: str,
    ) -> tuple[str, ...]:
        """The (canonical) ids of what a credential or OAuth client is for, checked: known
        companies, a known organisation, at least one of them. ``owner`` names it in errors."""
        ids = ([company_id] if company_id else []) + list(company_ids or [])
        companies = tuple(self.company(cid).id for cid in ids)
        if organisation_id is not None and organisation_id not in self.organisations:
            raise ValueError(f"unknown organisation {organisation_id}")
        if not companies and organisation_id is None:
            raise ValueError(f"{owner} needs a company, companies or an organisation")
        return companies

    def visible_companies(self, cred: Credential) -> set[str]:
        """The companies a credential sees: its own, and its organisation's."""
        ids = set(cred.company_ids)
        if cred.organisation_id and cred.organisation_id in self.organisations:
            ids.update(self.organisations[cred.organisation_id].company_ids)
        return ids

    def visible_job(self, cred: Credential, job_id: str) -> Job:
        """The job, if the credential sees its company; Pleo's 404 otherwise."""
        job = self.jobs.get(job_id)
        if job is None or job.company_id not in self.visible_companies(cred):
            raise ApiError(404, "EXPORT_NOT_FOUND", MSG_JOB_NOT_FOUND)
        return job

    # -- credentials ---------------------------------------------------------------------------
    def add_credential(
        self,
        kind: str,
        *,
        secret: str | None = None,
        company_id: str | None = None,
        company_ids: Iterable[str] | None = None,
        organisation_id: str | None = None,
        scopes: Iterable[str] | None = None,
        label: str | None = None,
        expires_in: float | None = None,
    ) -> Credential:
        """An API key (``kind="api_key"``) or bearer token (``kind="token"``), optionally
        expiring ``expires_in`` seconds from now on the sandbox clock."""
        with self.lock:
            companies = self.owned_companies(
                company_id, company_ids, organisation_id, owner="a credential"
            )
            checked_scopes = scope_set(scopes)
            if secret is None:
                prefix = "pleo_sbx_" if kind == "api_key" else "sbx_at_"
                secret = prefix + self.rng.randbytes(24).hex()
            if secret in self._by_secret:
                raise ValueError("that key/token is already registered")
            cred = Credential(
                id=("key_" if kind == "api_key" else "tok_") + self.rng.randbytes(6).hex(),
                kind=kind,
                secret=secret,
                company_ids=companies,
                organisation_id=organisation_id,
                scopes=checked_scopes,
                label=label,
                expires_at=(
                    self.clock.now() + timedelta(seconds=expires_in)
                    if expires_in is not None
                    else None
                ),
            )
            self.credentials[cred.id] = cred
            self._by_secret[secret] = cred.id
            return cred

    def credential_for_secret(self, secret: str) -> Credential | None:
        """The credential whose key or token is ``secret`` (revoked or expired included)."""
        return self.credentials.get(self._by_secret.get(secret, ""))

    def revoke(self, credential_id: str) -> Credential:
        """Revoke one credential; ``KeyError`` if there is none."""
        with self.lock:
            cred = self.credentials[credential_id]
            cred.revoked = True
            return cred

    def revoke_credentials(self, credential_ids: Iterable[str]) -> None:
        """Revoke every credential of ``credential_ids`` that exists."""
        with self.lock:
            for credential_id in credential_ids:
                cred = self.credentials.get(credential_id)
                if cred is not None:
                    cred.revoked = True

    def count_request(self, cred: Credential) -> None:
        """The steady rate limit (``rate_limit_*`` switches): 429 with ``Retry-After`` past it."""
        limit = int(self._switches["rate_limit_per_minute"])
        if limit <= 0:
            return
        key = rate_limit_key(cred, self._switches["rate_limit_scope"])
        wait = self.rate_limiter.take(
            key, limit, float(self._switches["rate_limit_window_seconds"])
        )
        if wait is not None:
            retry_after = RateLimiter.retry_after_header(wait)
            raise ApiError(429, "TOO_MANY_REQUESTS", MSG_RATE_LIMITED, {"Retry-After": retry_after})

    # -- lists ---------------------------------------------------------------------------------
    def ordered(self, rows: list, key: Callable) -> list:
        """``rows`` in the ``list_order`` switch's order."""
        return ordered(rows, key, order=self._switches["list_order"], seed=self.seed)

    def page(self, rows: list, query: dict[str, list[str]], sort_fields=None):
        """One page of ``rows`` for ``query`` (the ``page_size_*`` switches)."""
        return paginate(
            rows,
            query,
            default_limit=int(self._switches["page_size_default"]),
            max_limit=int(self._switches["page_size_max"]),
            sort_fields=sort_fields,
        )
