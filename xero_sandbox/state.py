"""The Xero sandbox's state and its Python control API (``server.state``).

Everything is in memory under one lock: the demo organisations (tenants), the OAuth server and
connections, the limits, faults, switches, the request log and the clock (real UTC time plus an
offset tests move, shared by token lifetimes, rate windows and document timestamps).
"""

from __future__ import annotations

import hashlib
import threading
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pleo_sandbox.clock import SandboxClock
from pleo_sandbox.faults import Fault, FaultRegistry
from pleo_sandbox.requestlog import RequestLog
from pleo_sandbox.vocabulary import TokenStatus
from xero_sandbox import data, documents, switches
from xero_sandbox.dates import parse_date
from xero_sandbox.errors import XeroError, validation
from xero_sandbox.limits import Limits
from xero_sandbox.oauth import OAuthClient, OAuthServer
from xero_sandbox.tenant import Tenant

# The fault kinds that make sense for Xero (pleo_sandbox.faults has one more, Pleo-only).
FAULT_KINDS = ("status", "rate_limit", "latency", "stall", "reset", "apply_then_drop")
IDEMPOTENCY_KEY_MAX = 128


class XeroState:
    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self.lock = threading.RLock()
        self.stop_event = threading.Event()
        self.base_url: str | None = None
        self.clock = SandboxClock()
        self.switches: dict[str, Any] = switches.defaults()
        self.request_log = RequestLog()
        self.faults = FaultRegistry()
        self.limits = Limits(self.clock, self.switches)
        self._tenants: dict[str, Tenant] = {}
        self.oauth = OAuthServer(self)
        self.reset(seed=seed)

    # -- setup -----------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Back to the demo organisations; clients, tokens, connections and logs are dropped."""
        with self.lock:
            self.seed = seed
            now = self.now()
            self._tenants = {
                t.id: t for t in (Tenant.demo(s, now) for s in data.DEMO_ORGANISATIONS)
            }
            self.oauth = OAuthServer(self)
            self.limits.reset()
            self.faults.clear()
            self.request_log.clear()

    def now(self) -> datetime:
        return self.clock.now()

    def tenants(self) -> list[Tenant]:
        with self.lock:
            return list(self._tenants.values())

    def tenant_map(self) -> dict[str, Tenant]:
        with self.lock:
            return dict(self._tenants)

    def tenant(self, tenant_id: str) -> Tenant:
        with self.lock:
            return self._tenants[str(tenant_id).lower()]

    def tenant_by_name(self, name: str) -> Tenant:
        return next(t for t in self.tenants() if t.name == name)

    def add_organisation(self, name: str, *, currency: str = "DKK", country: str = "DK") -> Tenant:
        spec = data.OrganisationSpec(
            name,
            short_code="!" + data.stable_id(name)[:4],
            country=country,
            currency=currency,
            version="GLOBAL",
            timezone="ROMANCESTANDARDTIME",
            tax_set="global",
        )
        with self.lock:
            tenant = Tenant.demo(spec, self.now())
            self._tenants[tenant.id] = tenant
            return tenant

    # -- OAuth -----------------------------------------------------------------------------------
    def add_oauth_client(self, client_id=None, *, client_secret=None, redirect_uris=(), name=None):
        with self.lock:
            return self.oauth.add_client(
                client_id, client_secret=client_secret, redirect_uris=redirect_uris, name=name
            )

    def oauth_authorize(
        self, url: str | None = None, *, tenant_ids=None, decision: str = "allow", **params
    ) -> str:
        """The consent step without a browser: returns the redirect Location."""
        if url:
            params = {**dict(parse_qsl(urlsplit(url).query)), **params}
        ids = [str(t) for t in (tenant_ids or [self.tenants()[0].id])]
        with self.lock:
            answer = self.oauth.authorize_decision(
                {**params, "decision": decision}, ids, self.tenant_map()
            )
        return answer.headers["Location"]

    def oauth_issue_tokens(
        self, client: OAuthClient | str, *, tenant_ids=None, scopes=None
    ) -> dict:
        """Consent and code exchange in one step (tests that only need a working token)."""
        client = client if isinstance(client, OAuthClient) else self.oauth.clients[client]
        scope = " ".join(scopes or self.all_scopes())
        location = self.oauth_authorize(
            client_id=client.client_id,
            redirect_uri=client.redirect_uris[0],
            response_type="code",
            scope=scope,
            tenant_ids=tenant_ids,
        )
        code = dict(parse_qsl(urlsplit(location).query))["code"]
        with self.lock:
            return self.oauth.token(
                None,
                {
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": client.redirect_uris[0],
                    "client_id": client.client_id,
                    "client_secret": client.client_secret,
                },
            )

    def all_scopes(self) -> list[str]:
        from xero_sandbox.oauth import known_scopes  # noqa: PLC0415

        return sorted(s for s in known_scopes(self.switches["scope_model"]) if s != "email")

    def refresh_token_status(self, refresh_token: str) -> TokenStatus | None:
        with self.lock:
            record = self.oauth.refresh.get(refresh_token)
            if record is None:
                return None
            return (
                TokenStatus.REVOKED if self.oauth.grants[record.grant_id].revoked else record.status
            )

    def connections(self) -> list[dict]:
        with self.lock:
            return [
                c.to_dict() | {"clientId": c.client_id} for c in self.oauth.connections.values()
            ]

    def revoke_connection(self, connection_id: str) -> None:
        with self.lock:
            del self.oauth.connections[str(connection_id)]

    # -- organisation settings -------------------------------------------------------------------
    def set_lock_dates(self, tenant_id: str, *, period: Any = "keep", end_of_year: Any = "keep"):
        with self.lock:
            tenant = self.tenant(tenant_id)
            if period != "keep":
                tenant.period_lock_date = _as_date(period)
            if end_of_year != "keep":
                tenant.end_of_year_lock_date = _as_date(end_of_year)
            return tenant.organisation()

    def add_account(self, tenant_id: str, **fields) -> dict:
        with self.lock:
            return self.tenant(tenant_id).add_account(now=self.now(), **fields)

    def set_account_status(self, tenant_id: str, code: str, status: str) -> dict:
        with self.lock:
            account = self.tenant(tenant_id).account_by_code(code)
            if account is None:
                raise KeyError(code)
            if status not in ("ACTIVE", "ARCHIVED", "DELETED"):
                raise ValueError("status must be ACTIVE, ARCHIVED or DELETED")
            account["Status"] = status
            return account

    def add_tax_rate(self, tenant_id: str, **fields) -> dict:
        with self.lock:
            return self.tenant(tenant_id).add_tax_rate(**fields)

    def set_tax_rate_status(self, tenant_id: str, tax_type: str, status: str) -> dict:
        with self.lock:
            tax = self.tenant(tenant_id).tax_rate(tax_type)
            if tax is None:
                raise KeyError(tax_type)
            if status not in ("ACTIVE", "DELETED", "ARCHIVED", "PENDING"):
                raise ValueError("status must be ACTIVE, DELETED, ARCHIVED or PENDING")
            tax["Status"] = status
            return tax

    # -- documents -------------------------------------------------------------------------------
    def documents(self, tenant_id: str, kind: str = "ManualJournals") -> list[dict]:
        with self.lock:
            return [documents.public(d) for d in self.tenant(tenant_id).documents[kind].values()]

    def set_document_status(self, tenant_id: str, document_id: str, status: str) -> dict:
        """Void or delete a document as a person in Xero would (no rule applies)."""
        if status not in ("VOIDED", "DELETED"):
            raise ValueError("status must be VOIDED or DELETED")
        with self.lock:
            return documents.set_status(
                self.tenant(tenant_id), str(document_id), status, now=self.now()
            )

    def edit_document(self, tenant_id: str, document_id: str, **changes) -> dict:
        """Change a document's fields or lines as a person in Xero would (``documents.edit``:
        its status kept, its rules applied; ``ValueError`` when they refuse it)."""
        with self.lock:
            return documents.edit(self.tenant(tenant_id), str(document_id), changes, now=self.now())

    def attachments(self, tenant_id: str, document_id: str) -> list[dict]:
        with self.lock:
            return [
                {k: v for k, v in a.items() if not k.startswith("_")}
                for a in self.tenant(tenant_id).attachments.get(str(document_id), [])
            ]

    # -- idempotency -----------------------------------------------------------------------------
    def idempotent(self, tenant: Tenant, client_id: str, key: str, request_body: bytes, run):
        """``Idempotency-Key``: the same key and body get the first answer again; the same key
        with another body is refused (400). Answers below 500 are remembered for
        ``idempotency_key_ttl_seconds``."""
        if len(key) > IDEMPOTENCY_KEY_MAX:
            raise validation(
                f"The Idempotency-Key must be {IDEMPOTENCY_KEY_MAX} characters or fewer."
            )
        fingerprint = hashlib.sha256(request_body).hexdigest()
        scoped = f"{client_id}:{key}"
        now = self.now()
        ttl = timedelta(seconds=self.switches["idempotency_key_ttl_seconds"])
        seen = tenant.idempotency.get(scoped)
        if seen is not None and now < seen[3] + ttl:
            if seen[0] != fingerprint:
                raise validation(
                    "The Idempotency-Key was already used for a different request body."
                )
            return seen[1], seen[2], seen[4]
        status, body, headers = run()
        if status < 500:
            tenant.idempotency[scoped] = (fingerprint, status, body, now, headers)
        return status, body, headers

    # -- clock, switches, faults, logs -----------------------------------------------------------
    def advance_clock(self, seconds: float) -> datetime:
        return self.clock.advance(seconds)

    def set_clock_offset(self, seconds: float) -> datetime:
        return self.clock.set_offset(seconds)

    def set_switches(self, **values) -> dict:
        with self.lock:
            checked = {name: switches.checked(name, value) for name, value in values.items()}
            self.switches.update(checked)
            return dict(self.switches)

    def reset_switches(self) -> dict:
        with self.lock:
            self.switches.clear()
            self.switches.update(switches.defaults())
            return dict(self.switches)

    def add_fault(self, kind: str, method: str | None = None, path: str | None = None, **kw):
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        return self.faults.add(Fault(kind, method, path, **kw))

    def remove_fault(self, fault_id: str) -> bool:
        return self.faults.remove(fault_id)

    def clear_faults(self) -> None:
        self.faults.clear()

    def requests(self, method: str | None = None, path: str | None = None) -> list[dict]:
        return self.request_log.entries(method=method, path=path)

    def clear_requests(self) -> None:
        self.request_log.clear()


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    parsed = parse_date(value)
    if parsed is None:
        raise ValueError(f"not a date: {value!r}")
    return parsed


__all__ = ["XeroState", "XeroError"]
