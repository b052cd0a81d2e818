"""The sandbox's in-memory Pleo behind one front: :class:`SandboxState`.

:class:`SandboxState` is both the domain the HTTP layer calls (the ``api_*`` methods, with an
authenticated :class:`~pleo_sandbox.entities.Credential`) and the Python control API used by tests
(every public method without the ``api_`` prefix; listed in the package docstring). It holds no
logic of its own: each method hands over to one part.

* :mod:`pleo_sandbox.store`: the data, the lock, ids, clock, switches, faults, request log;
  companies, organisations and credentials.
* :mod:`pleo_sandbox.auth`: who is calling (API key or bearer token), scopes.
* :mod:`pleo_sandbox.jobs`: export jobs (creation, reads, events posted, control shortcuts).
* :mod:`pleo_sandbox.job_events`: the transition table, each job's event log, expiry.
* :mod:`pleo_sandbox.items`: job items, export items and their receipt files.
* :mod:`pleo_sandbox.subscriptions`: webhook subscriptions v1; who gets the job-created event.
* :mod:`pleo_sandbox.webhooks`: deliveries (signing, retries, the deliveries log).
* :mod:`pleo_sandbox.oauth`: the OAuth 2.0 endpoints; :mod:`pleo_sandbox.oauth_store` holds
  clients, codes and token families, :mod:`pleo_sandbox.oauth_pages` the HTML.

All state sits behind the store's one re-entrant lock; expiry is applied lazily at the start of
every operation and whenever the clock or the switches move.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pleo_sandbox import auth
from pleo_sandbox.clock import SandboxClock
from pleo_sandbox.entities import Company, Credential, Organisation
from pleo_sandbox.faults import Fault
from pleo_sandbox.items import Items
from pleo_sandbox.job_events import parse_event_body, sweep
from pleo_sandbox.jobs import Jobs
from pleo_sandbox.oauth import OAuthServer
from pleo_sandbox.oauth_store import OAuthClient, OAuthStore
from pleo_sandbox.ratelimit import RateLimiter
from pleo_sandbox.store import Store
from pleo_sandbox.subscriptions import Subscriptions


class SandboxState:
    """In-memory Pleo plus the Python control API (see the package docstring for the list)."""

    def __init__(self, seed: int | None = None, clock: SandboxClock | None = None) -> None:
        self.store = Store(seed, clock)
        self.clock = self.store.clock
        self.faults = self.store.faults
        self.request_log = self.store.request_log
        self.stop_event = self.store.stop_event
        self._subscriptions = Subscriptions(self.store)
        self.webhooks = self._subscriptions.dispatcher
        self._jobs = Jobs(self.store, self._subscriptions)
        self._items = Items(self.store)
        self._oauth_store = OAuthStore(self.store)
        self.oauth = OAuthServer(self.store, self._oauth_store)

    @property
    def seed(self) -> int:
        return self.store.seed

    @property
    def base_url(self) -> str:
        """Where the sandbox is served (the server sets it); export items' URLs start with it."""
        return self.store.base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        self.store.base_url = value

    @property
    def rate_limiter(self) -> RateLimiter:
        return self.store.rate_limiter

    @rate_limiter.setter
    def rate_limiter(self, value: RateLimiter) -> None:
        self.store.rate_limiter = value

    # ==========================================================================================
    # Control API: setup
    # ==========================================================================================
    def reset(self, seed: int | None = None) -> None:
        """Forget everything: data, switches, faults, logs, queued webhooks, clock offset."""
        with self.store.lock:
            self.store.reset(seed)
            self._oauth_store.reset()
            self.webhooks.reset()

    def add_company(
        self,
        name: str | None = None,
        *,
        currency: str = "DKK",
        company_id: str | None = None,
        organisation_id: str | None = None,
        contra_accounts_configured: bool = True,
    ) -> Company:
        return self.store.add_company(
            name,
            currency=currency,
            company_id=company_id,
            organisation_id=organisation_id,
            contra_accounts_configured=contra_accounts_configured,
        )

    def update_company(self, company_id: str, *, contra_accounts_configured: bool) -> Company:
        return self.store.update_company(
            company_id, contra_accounts_configured=contra_accounts_configured
        )

    def add_organisation(
        self,
        name: str | None = None,
        *,
        company_ids: Iterable[str] = (),
        n_companies: int = 0,
        currency: str = "DKK",
    ) -> Organisation:
        """An organisation holding ``company_ids`` plus ``n_companies`` new companies."""
        return self.store.add_organisation(
            name, company_ids=company_ids, n_companies=n_companies, currency=currency
        )

    def add_api_key(
        self,
        company_id: str | None = None,
        *,
        company_ids: Iterable[str] | None = None,
        organisation_id: str | None = None,
        key: str | None = None,
        scopes: Iterable[str] | None = None,
        label: str | None = None,
    ) -> Credential:
        """An API key for one company, several companies or an organisation."""
        return self.store.add_credential(
            "api_key",
            secret=key,
            company_id=company_id,
            company_ids=company_ids,
            organisation_id=organisation_id,
            scopes=scopes,
            label=label,
        )

    def add_token(
        self,
        company_id: str | None = None,
        *,
        company_ids: Iterable[str] | None = None,
        organisation_id: str | None = None,
        token: str | None = None,
        scopes: Iterable[str] | None = None,
        expires_in: float | None = None,
        label: str | None = None,
    ) -> Credential:
        """A registered bearer access token (optionally expiring on the sandbox clock)."""
        return self.store.add_credential(
            "token",
            secret=token,
            company_id=company_id,
            company_ids=company_ids,
            organisation_id=organisation_id,
            scopes=scopes,
            label=label,
            expires_in=expires_in,
        )

    def revoke(self, credential_id: str) -> Credential:
        return self.store.revoke(credential_id)

    def credentials(self) -> list[Credential]:
        with self.store.lock:
            return list(self.store.credentials.values())

    def companies(self) -> list[Company]:
        with self.store.lock:
            return list(self.store.companies.values())

    def organisations(self) -> list[Organisation]:
        with self.store.lock:
            return list(self.store.organisations.values())

    # ==========================================================================================
    # Control API: OAuth 2.0 (pleo_sandbox.oauth)
    # ==========================================================================================
    def add_oauth_client(
        self,
        client_id: str | None = None,
        *,
        client_secret: str | None = None,
        redirect_uris: Iterable[str] | str = (),
        company_id: str | None = None,
        company_ids: Iterable[str] | None = None,
        organisation_id: str | None = None,
        scopes: Iterable[str] | str | None = None,
        name: str | None = None,
    ) -> OAuthClient:
        """Register an OAuth client (``.client_id``, ``.client_secret``, ``.redirect_uris``)."""
        return self._oauth_store.add_client(
            client_id,
            client_secret=client_secret,
            redirect_uris=redirect_uris,
            company_id=company_id,
            company_ids=company_ids,
            organisation_id=organisation_id,
            scopes=scopes,
            name=name,
        )

    def oauth_clients(self) -> list[OAuthClient]:
        return self._oauth_store.clients()

    def oauth_authorize(
        self, url: str | None = None, *, decision: str = "approve", **params
    ) -> str:
        """Approve (or ``decision="deny"``) an authorize request given as its URL or its
        parameters, as the user would on the consent page; returns the redirect URL."""
        return self.oauth.authorize(url, decision=decision, **params)

    def oauth_issue_tokens(self, client_id: str, *, scopes: Iterable[str] | None = None) -> dict:
        """A fresh token family for ``client_id`` without the authorize round trip:
        ``{access_token, refresh_token, expires_in, token_type, scope, grantId}``."""
        return self._oauth_store.issue_tokens(client_id, scopes=scopes)

    def oauth_grants(self) -> list[dict]:
        """Every authorisation (token family) with its refresh tokens' statuses (no secrets)."""
        return self._oauth_store.grants()

    def oauth_refresh_token_status(self, refresh_token: str) -> str | None:
        """``active``, ``rotated``, ``revoked`` or None for an unknown token."""
        return self._oauth_store.refresh_token_status(refresh_token)

    def oauth_revoke_grant(self, grant_id: str) -> dict:
        return self._oauth_store.revoke_grant(grant_id)

    # ==========================================================================================
    # Control API: jobs
    # ==========================================================================================
    def create_job(
        self,
        company_id: str,
        items: int | Sequence[str] | Mapping[str, int] = 3,
        *,
        created_at: datetime | str | None = None,
        expires_in: int | None = None,
        vendor_based_bookkeeping: bool = False,
        is_interactive: bool = True,
        created_by: str | None = None,
        accounting_entry_ids: Sequence[str] | None = None,
        notify: bool = True,
        conflict_check: bool = False,
    ) -> dict:
        """Create a pending job as Pleo's web app would (see :meth:`Jobs.create_job`)."""
        return self._jobs.create_job(
            company_id,
            items,
            created_at=created_at,
            expires_in=expires_in,
            vendor_based_bookkeeping=vendor_based_bookkeeping,
            is_interactive=is_interactive,
            created_by=created_by,
            accounting_entry_ids=accounting_entry_ids,
            notify=notify,
            conflict_check=conflict_check,
        )

    def get_job(self, job_id: str) -> dict:
        """Everything about a job: ``{"job", "items" (with kinds), "events", "itemUpdates"}``."""
        return self._jobs.get_job(job_id)

    def list_jobs(self, company_id: str | None = None) -> list[dict]:
        return self._jobs.list_jobs(company_id)

    def export_items(self, job_id: str) -> list[dict]:
        """The job's ExportItemV3 payloads, whatever its status (control view)."""
        return self._items.export_items(job_id)

    def start_as_other_integration(self, job_id: str) -> bool:
        """Another integration posts ``started`` for the job; True if it moved to in_progress."""
        return self._jobs.start_as_other_integration(job_id)

    def set_job_status(self, job_id: str, status: str, **fields: Any) -> dict:
        """Force a job's status (escape hatch for test set-up; no transition rules)."""
        return self._jobs.set_job_status(job_id, status, **fields)

    def send_job_created_webhook(self, job_id: str) -> int:
        """(Re)send ``v1.export-job.created`` for a job as a new event; returns deliveries."""
        return self._jobs.send_job_created_webhook(job_id)

    def seed_companies(
        self, n: int, *, jobs_per_company: int = 2, items_per_job: int | Mapping[str, int] = 3
    ) -> list[dict]:
        """``n`` companies, each with an API key and ``jobs_per_company`` pending jobs."""
        return self._jobs.seed_companies(
            n, jobs_per_company=jobs_per_company, items_per_job=items_per_job
        )

    # ==========================================================================================
    # Control API: clock, switches, faults, logs
    # ==========================================================================================
    def now(self) -> datetime:
        return self.clock.now()

    def advance_clock(self, seconds: float) -> datetime:
        """Move the sandbox clock forward (or back) and apply expiry at the new time."""
        with self.store.lock:
            now = self.clock.advance(seconds)
            sweep(self.store)
            return now

    def set_clock_offset(self, seconds: float) -> datetime:
        with self.store.lock:
            now = self.clock.set_offset(seconds)
            sweep(self.store)
            return now

    @property
    def switches(self) -> dict[str, Any]:
        return self.store.switches()

    def set_switches(self, **switches: Any) -> dict[str, Any]:
        """Change switches (see ``pleo_sandbox.switches.DEFAULT_SWITCHES``); unknown names or
        values raise."""
        with self.store.lock:
            self.store.set_switches(**switches)
            sweep(self.store)
            return self.switches

    def reset_switches(self) -> dict[str, Any]:
        with self.store.lock:
            self.store.reset_switches()
            return self.switches

    def add_fault(self, kind: str, method: str | None = None, path: Any = None, **params) -> Fault:
        """Add a fault (see :mod:`pleo_sandbox.faults` for kinds and parameters)."""
        return self.faults.add(Fault(kind=kind, method=method, path=path, **params))

    def remove_fault(self, fault_id: str) -> bool:
        return self.faults.remove(fault_id)

    def clear_faults(self) -> None:
        self.faults.clear()

    def requests(self, method: str | None = None, path: str | None = None) -> list[dict]:
        """The request log (oldest first), optionally filtered by method and exact path."""
        return self.request_log.entries(method=method, path=path)

    def clear_requests(self) -> None:
        self.request_log.clear()

    def webhook_deliveries(self) -> list[dict]:
        """One entry per delivery attempt, oldest first."""
        return self.webhooks.log()

    def wait_for_deliveries(self, count: int = 1, timeout: float = 5.0, **match: Any) -> list[dict]:
        """Wait until ``count`` attempts whose fields equal ``match`` are logged; return them."""

        def matching(log: list[dict]) -> list[dict]:
            return [e for e in log if all(e.get(k) == v for k, v in match.items())]

        self.webhooks.wait_for(lambda log: len(matching(log)) >= count, timeout)
        return matching(self.webhooks.log())

    def subscriptions(self) -> list[dict]:
        """Every live subscription, with its owner credential id (control view, no secrets)."""
        return self._subscriptions.live()

    def file(self, file_id: str) -> dict | None:
        return self._items.file(file_id)

    # ==========================================================================================
    # For the HTTP layer: authentication, rate limit, error bodies
    # ==========================================================================================
    def identity_for(self, authorization: str | None) -> str | None:
        """Who a request claims to be, for the log: ``api_key:<id>``/``token:<id>``, never raw."""
        return auth.identity_for(self.store, authorization)

    def authenticate(self, authorization: str | None) -> Credential:
        return auth.authenticate(self.store, authorization)

    @staticmethod
    def require_scope(cred: Credential, scope: str) -> None:
        auth.require_scope(cred, scope)

    def count_request(self, cred: Credential) -> None:
        """The steady rate limit (``rate_limit_*`` switches): 429 with ``Retry-After`` past it."""
        self.store.count_request(cred)

    def error_body(self, body: Any) -> Any:
        """An error answer's body as sent (the ``error_type_case`` switch)."""
        return self.store.error_body(body)

    # ==========================================================================================
    # Export API v3 (called by the HTTP layer with an authenticated credential)
    # ==========================================================================================
    def api_list_jobs(self, cred: Credential, query: dict[str, list[str]]) -> dict:
        return self._jobs.api_list_jobs(cred, query)

    def api_get_job(self, cred: Credential, job_id: str) -> dict:
        return self._jobs.api_get_job(cred, job_id)

    def api_create_job(self, cred: Credential, body: Any) -> dict:
        return self._jobs.api_create_job(cred, body)

    @staticmethod
    def parse_event_body(body: Any) -> dict:
        return parse_event_body(body)

    def api_post_event(self, cred: Credential, body: Any, request_id: str | None = None) -> None:
        self._jobs.api_post_event(cred, body, request_id)

    def other_integration_preempts(self, body: Any) -> bool:
        """The ``other_integration_starts`` fault: start the body's job as someone else."""
        return self._jobs.other_integration_preempts(body)

    def api_list_job_items(
        self, cred: Credential, job_id: str, query: dict[str, list[str]]
    ) -> dict:
        return self._items.api_list_job_items(cred, job_id, query)

    def api_update_items(
        self, cred: Credential, job_id: str, body: Any, request_id: str | None = None
    ) -> dict:
        return self._items.api_update_items(cred, job_id, body, request_id)

    def api_list_export_items(self, cred: Credential, query: dict[str, list[str]]) -> dict:
        return self._items.api_list_export_items(cred, query)

    # ==========================================================================================
    # Webhook subscriptions v1
    # ==========================================================================================
    def api_list_subscriptions(self, cred: Credential, query: dict[str, list[str]]) -> dict:
        return self._subscriptions.api_list_subscriptions(cred, query)

    def api_create_subscription(self, cred: Credential, body: Any) -> dict:
        return self._subscriptions.api_create_subscription(cred, body)

    def api_get_subscription(self, cred: Credential, subscription_id: str) -> dict:
        return self._subscriptions.api_get_subscription(cred, subscription_id)

    def api_update_subscription(self, cred: Credential, subscription_id: str, body: Any) -> dict:
        return self._subscriptions.api_update_subscription(cred, subscription_id, body)

    def api_delete_subscription(self, cred: Credential, subscription_id: str) -> None:
        self._subscriptions.api_delete_subscription(cred, subscription_id)

    def api_subscription_secret(self, cred: Credential, subscription_id: str) -> dict:
        return self._subscriptions.api_subscription_secret(cred, subscription_id)

    def api_subscription_activities(
        self, cred: Credential, subscription_id: str, query: dict[str, list[str]]
    ) -> dict:
        return self._subscriptions.api_subscription_activities(cred, subscription_id, query)
