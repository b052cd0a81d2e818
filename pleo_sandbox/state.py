"""The sandbox's in-memory Pleo behind one front: :class:`SandboxState`.

:class:`SandboxState` is both the domain the HTTP layer calls (the ``api_*`` methods, with an
authenticated :class:`~pleo_sandbox.entities.Credential`) and the Python control API used by tests
(every public method without the ``api_`` prefix; listed in the package docstring). It holds no
logic of its own: each method hands over to one part, most of them as ``name = _to(part,
Part.method)``, so ``state.create_job`` *is* ``Jobs.create_job`` bound to the sandbox's jobs (same
signature, same docstring).

* :mod:`pleo_sandbox.store`: the data, the lock, ids, clock, switches, faults, request log;
  companies, organisations and credentials.
* :mod:`pleo_sandbox.auth`: who is calling (API key or bearer token), scopes.
* :mod:`pleo_sandbox.jobs`: export jobs (creation, reads, events posted, control shortcuts).
* :mod:`pleo_sandbox.job_events`: the transition table, each job's event log, expiry.
* :mod:`pleo_sandbox.items`: job items, export items and their receipt files;
  :mod:`pleo_sandbox.files` serves the files (streamed) and their per-file faults.
* :mod:`pleo_sandbox.subscriptions`: webhook subscriptions v1; who gets the job-created event.
* :mod:`pleo_sandbox.webhooks`: deliveries (signing, retries, the deliveries log).
* :mod:`pleo_sandbox.oauth`: the OAuth 2.0 endpoints; :mod:`pleo_sandbox.oauth_store` holds
  clients, codes and token families, :mod:`pleo_sandbox.oauth_pages` the HTML.

All state sits behind the store's one re-entrant lock; expiry is applied lazily at the start of
every operation and whenever the clock or the switches move.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from pleo_sandbox import auth
from pleo_sandbox.clock import SandboxClock
from pleo_sandbox.entities import Company, Credential, Organisation
from pleo_sandbox.faults import Fault, FaultRegistry
from pleo_sandbox.files import Files
from pleo_sandbox.items import Items
from pleo_sandbox.job_events import parse_event_body, sweep
from pleo_sandbox.jobs import Jobs
from pleo_sandbox.oauth import OAuthServer
from pleo_sandbox.oauth_store import OAuthStore
from pleo_sandbox.requestlog import RequestLog
from pleo_sandbox.store import Store
from pleo_sandbox.subscriptions import Subscriptions
from pleo_sandbox.webhooks import WebhookDispatcher

P = ParamSpec("P")
R = TypeVar("R")


class _To(Generic[P, R]):
    """``name = _to("part", Part.method)`` in the class body: ``instance.name`` is
    ``instance.part.method`` (the part's bound method itself, so its signature and docstring)."""

    def __init__(self, part: str, method: Callable[Concatenate[Any, P], R]) -> None:
        self.part = part
        self.method = method

    def __get__(self, instance: object, owner: type | None = None) -> Callable[P, R]:
        if instance is None:
            return self.method  # read on the class: the part's method (help, signature)
        return getattr(getattr(instance, self.part), self.method.__name__)


_to = _To  # reads as "hand to": ``create_job = _to("_jobs", Jobs.create_job)``


def _store_attribute(name: str, doc: str) -> property:
    """``instance.<name>`` reads and writes ``instance.store.<name>``."""
    return property(
        lambda self: getattr(self.store, name),
        lambda self, value: setattr(self.store, name, value),
        doc=doc,
    )


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
        self._files = Files(self.store)
        self._oauth_store = OAuthStore(self.store)
        self.oauth = OAuthServer(self.store, self._oauth_store)

    @property
    def seed(self) -> int:
        return self.store.seed

    # Where the sandbox is served (the server sets it); export items' URLs start with it.
    base_url = _store_attribute("base_url", "The base URL the sandbox is served at.")
    rate_limiter = _store_attribute("rate_limiter", "The store's rate limiter (tests swap it).")

    # ==========================================================================================
    # Control API: setup
    # ==========================================================================================
    def reset(self, seed: int | None = None) -> None:
        """Forget everything: data, switches, faults, logs, queued webhooks, clock offset."""
        with self.store.lock:
            self.store.reset(seed)
            self._oauth_store.reset()
            self.webhooks.reset()

    add_company = _to("store", Store.add_company)
    update_company = _to("store", Store.update_company)
    add_organisation = _to("store", Store.add_organisation)

    def add_api_key(
        self, company_id: str | None = None, *, key: str | None = None, **owner: Any
    ) -> Credential:
        """An API key for one company, several (``company_ids``) or an organisation
        (``organisation_id``), with ``scopes`` and a ``label``: see :meth:`Store.add_credential`."""
        return self.store.add_credential("api_key", secret=key, company_id=company_id, **owner)

    def add_token(
        self, company_id: str | None = None, *, token: str | None = None, **owner: Any
    ) -> Credential:
        """A registered bearer access token, as :meth:`add_api_key` (``expires_in``: seconds it
        lives on the sandbox clock)."""
        return self.store.add_credential("token", secret=token, company_id=company_id, **owner)

    revoke = _to("store", Store.revoke)

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
    add_oauth_client = _to("_oauth_store", OAuthStore.add_client)
    oauth_clients = _to("_oauth_store", OAuthStore.clients)
    oauth_authorize = _to("oauth", OAuthServer.authorize)
    oauth_issue_tokens = _to("_oauth_store", OAuthStore.issue_tokens)
    oauth_grants = _to("_oauth_store", OAuthStore.grants)
    oauth_refresh_token_status = _to("_oauth_store", OAuthStore.refresh_token_status)
    oauth_revoke_grant = _to("_oauth_store", OAuthStore.revoke_grant)

    # ==========================================================================================
    # Control API: jobs
    # ==========================================================================================
    create_job = _to("_jobs", Jobs.create_job)
    get_job = _to("_jobs", Jobs.get_job)
    list_jobs = _to("_jobs", Jobs.list_jobs)
    export_items = _to("_items", Items.export_items)
    start_as_other_integration = _to("_jobs", Jobs.start_as_other_integration)
    set_job_status = _to("_jobs", Jobs.set_job_status)
    send_job_created_webhook = _to("_jobs", Jobs.send_job_created_webhook)
    seed_companies = _to("_jobs", Jobs.seed_companies)

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

    remove_fault = _to("faults", FaultRegistry.remove)
    clear_faults = _to("faults", FaultRegistry.clear)

    def requests(self, method: str | None = None, path: str | None = None) -> list[dict]:
        """The request log (oldest first), optionally filtered by method and exact path."""
        return self.request_log.entries(method=method, path=path)

    clear_requests = _to("request_log", RequestLog.clear)
    webhook_deliveries = _to("webhooks", WebhookDispatcher.log)

    def wait_for_deliveries(self, count: int = 1, timeout: float = 5.0, **match: Any) -> list[dict]:
        """Wait until ``count`` attempts whose fields equal ``match`` are logged; return them."""

        def matching(log: list[dict]) -> list[dict]:
            return [e for e in log if all(e.get(k) == v for k, v in match.items())]

        self.webhooks.wait_for(lambda log: len(matching(log)) >= count, timeout)
        return matching(self.webhooks.log())

    subscriptions = _to("_subscriptions", Subscriptions.live)
    file = _to("_items", Items.file)
    set_file = _to("_files", Files.set_file)
    add_file_fault = _to("_files", Files.add_file_fault)
    http_download = _to("_files", Files.http_download)

    # ==========================================================================================
    # For the HTTP layer: authentication, rate limit, error bodies
    # ==========================================================================================
    def identity_for(self, authorization: str | None) -> str | None:
        """Who a request claims to be, for the log: ``api_key:<id>``/``token:<id>``, never raw."""
        return auth.identity_for(self.store, authorization)

    def authenticate(self, authorization: str | None) -> Credential:
        return auth.authenticate(self.store, authorization)

    require_scope = staticmethod(auth.require_scope)
    count_request = _to("store", Store.count_request)
    error_body = _to("store", Store.error_body)

    # ==========================================================================================
    # Export API v3 and webhook subscriptions v1 (the HTTP layer calls them with an
    # authenticated credential)
    # ==========================================================================================
    api_list_jobs = _to("_jobs", Jobs.api_list_jobs)
    api_get_job = _to("_jobs", Jobs.api_get_job)
    api_create_job = _to("_jobs", Jobs.api_create_job)
    parse_event_body = staticmethod(parse_event_body)
    api_post_event = _to("_jobs", Jobs.api_post_event)
    other_integration_preempts = _to("_jobs", Jobs.other_integration_preempts)
    api_list_job_items = _to("_items", Items.api_list_job_items)
    api_update_items = _to("_items", Items.api_update_items)
    api_list_export_items = _to("_items", Items.api_list_export_items)

    api_list_subscriptions = _to("_subscriptions", Subscriptions.api_list_subscriptions)
    api_create_subscription = _to("_subscriptions", Subscriptions.api_create_subscription)
    api_get_subscription = _to("_subscriptions", Subscriptions.api_get_subscription)
    api_update_subscription = _to("_subscriptions", Subscriptions.api_update_subscription)
    api_delete_subscription = _to("_subscriptions", Subscriptions.api_delete_subscription)
    api_subscription_secret = _to("_subscriptions", Subscriptions.api_subscription_secret)
    api_subscription_activities = _to("_subscriptions", Subscriptions.api_subscription_activities)
