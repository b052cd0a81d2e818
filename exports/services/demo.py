"""The sandbox demo run by ``manage.py serve`` when ``PLEO_SANDBOX=1``.

Starts the local Pleo sandbox as a child process, seeds (idempotently) a few demo companies with
credentials and webhook endpoints pointing at it, subscribes the endpoints, and keeps creating a
new export job now and then, so a newcomer sees jobs detected through signed webhooks, started
and audited. It prints a short line per notable event.

Only ``serve`` seeds, and never into a database that holds real (non-sandbox) companies. The
sandbox keeps its state in memory, so on every start the demo companies (same ids, same API keys)
are registered with the new sandbox again; our database is only written when they are missing.
An OAuth 2.0 demo credential is seeded too, its client registered with the sandbox's OAuth
server, so "Connect to Pleo" works locally (its tokens are dropped on every start: the new
sandbox does not know them).
"""

from __future__ import annotations

import random
import secrets
import time
import uuid
from urllib.parse import urlsplit

import requests

from exports.models import AuditEntry, AuditStep, Company, Credential
from exports.services.companies import company_add_or_update, webhook_endpoint_ensure

DEMO_NAMESPACE = uuid.UUID("6f1c1f0e-3a34-4d0b-9c52-8e0d2b7a1c11")
DEMO_COMPANIES = ("Nordlys ApS", "Fjordkraft AS", "Skärgård AB")
# An OAuth 2.0 client of the first demo company, registered with the sandbox's OAuth server:
# "Connect to Pleo" on this credential walks the whole flow locally (serve points
# PLEO_OAUTH_BASE_URL at the sandbox). No company uses it until an operator chooses to.
DEMO_OAUTH_CREDENTIAL = "Nordlys ApS (OAuth 2.0, sandbox)"
NEW_JOB_EVERY_SECONDS = 25
# Pleo's documented limit (reference §6.2), so the demo runs the product's budget against it.
SANDBOX_SWITCHES = {"rate_limit_per_minute": 600}
NOTABLE_STEPS = {
    AuditStep.STARTED: "started",
    AuditStep.COMPLETED: "completed",
    AuditStep.COMPLETED_WITH_ERRORS: "completed with errors",
    AuditStep.JOB_FAILED: "failed",
    AuditStep.EXPIRED: "expired before it could be started",
    AuditStep.OWNED_ELSEWHERE: "owned elsewhere",
    AuditStep.ERROR: "error",
}
TIMEOUT = (2, 5)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# The local Xero (``manage.py xero_sandbox``): started beside the Pleo sandbox unless a Xero app
# is configured. The first demo company books in its organisation of the same name (DKK).
XERO_DEMO_CLIENT_ID = "pleo-export-bridge-demo"
XERO_DEMO_SETTINGS = ("XERO_API_BASE_URL", "XERO_IDENTITY_BASE_URL", "XERO_LOGIN_BASE_URL")
XERO_DEMO_TARGETS = {
    "account": "429",
    "contra_account": "840",
    "tax_code": "INPUT",
    "tag": "Department/Sales",
}


def xero_demo_environment(*, xero_port: int, environ) -> dict[str, str]:
    """What the demo's processes get to book in the local Xero (nothing when ``XERO_CLIENT_ID``
    names a real Xero app). The client secret is new on every start, never printed."""
    from django.conf import settings

    if environ.get("XERO_CLIENT_ID") or settings.XERO_CLIENT_ID:
        return {}
    url = f"http://127.0.0.1:{xero_port}"
    return {
        **dict.fromkeys(XERO_DEMO_SETTINGS, url),
        "XERO_CLIENT_ID": XERO_DEMO_CLIENT_ID,
        "XERO_CLIENT_SECRET": secrets.token_urlsafe(24),
    }


def demo_company_id(name: str) -> uuid.UUID:
    return uuid.uuid5(DEMO_NAMESPACE, name)


class Demo:
    def __init__(self, *, command, sandbox_port: int, spawn, manage, xero_env=None):
        self.xero_env = xero_env or {}  # xero_demo_environment(): empty without the local Xero
        self.xero_url = self.xero_env.get("XERO_API_BASE_URL", "")
        self.xero_company: Company | None = None
        self.out = command.stdout
        self.err = command.stderr
        self.style = command.style
        self.url = f"http://127.0.0.1:{sandbox_port}"
        self.port = sandbox_port
        self.spawn = spawn
        self.manage = manage
        self.companies: list[Company] = []
        self.next_job_at = time.monotonic() + 5
        self.last_audit_id = (
            AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
        )
        self.rng = random.Random()  # noqa: S311  (picks a demo company, nothing secret)
        self.enabled = True

    # --- the sandbox process -------------------------------------------------------------------

    def start(self, *, env: dict[str, str]) -> None:
        self.spawn("sandbox", self.manage("pleo_sandbox", "--port", str(self.port)), env)
        self._wait_for(f"{self.url}/_sandbox/health", "The Pleo sandbox")
        self.configure_sandbox()
        self.out.write(self.style.SUCCESS(f"Pleo sandbox: {self.url} (PLEO_SANDBOX=1)"))
        if self.xero_url:
            port = urlsplit(self.xero_url).port
            self.spawn(
                "xero-sandbox",
                self.manage("xero_sandbox", "--port", str(port)),
                {**env, "XERO_SANDBOX": "1"},
            )
            self._wait_for(f"{self.xero_url}/_sandbox/health", "The local Xero")
            self.out.write(self.style.SUCCESS(f"Local Xero: {self.xero_url}"))

    @staticmethod
    def _wait_for(url: str, what: str) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(url, timeout=TIMEOUT).raise_for_status()
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError(f"{what} did not answer at {url} within 20 s.")

    def configure_sandbox(self) -> None:
        self._control("PATCH", "/switches", SANDBOX_SWITCHES)

    def _control(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(
            method, f"{self.url}/_sandbox{path}", json=body, timeout=TIMEOUT
        )
        response.raise_for_status()
        return response.json() if response.content else {}

    # --- seeding -------------------------------------------------------------------------------

    def _real_companies(self) -> list[Company]:
        """Companies not served by a local sandbox (their API base URL is not on loopback)."""
        return [
            company
            for company in Company.objects.select_related("credential")
            if urlsplit(company.credential.api_base_url).hostname not in LOOPBACK
        ]

    def seed(self, *, public_base_url: str) -> None:
        real = self._real_companies()
        if real:
            self.enabled = False
            self.err.write(
                f"This database holds {len(real)} company(ies) that are not sandbox companies: "
                f"the demo seeds nothing and creates no jobs. (The sandbox still runs at "
                f"{self.url}.)"
            )
            return
        from exports.services.subscriptions import webhooks_subscribe

        created = 0
        for name in DEMO_COMPANIES:
            pleo_id = demo_company_id(name)
            company = (
                Company.objects.select_related("credential").filter(pleo_company_id=pleo_id).first()
            )
            api_key = (
                company.credential.api_key if company else f"sandbox_{secrets.token_urlsafe(18)}"
            )
            remote = {"name": name, "companyId": str(pleo_id)}
            if self.xero_url and name == DEMO_COMPANIES[0]:
                remote["currency"] = "DKK"  # the local Xero's organisation of that name
            self._control("POST", "/companies", remote)
            self._control("POST", "/api-keys", {"companyId": str(pleo_id), "key": api_key})
            if company is None:
                company = company_add_or_update(
                    name=name, pleo_company_id=pleo_id, api_key=api_key, api_base_url=self.url
                ).company
                created += 1
            elif company.credential.api_base_url != self.url:
                # The sandbox listens on another port this time.
                company.credential.api_base_url = self.url
                company.credential.save(update_fields=["api_base_url", "updated_at"])
            webhooks_subscribe(credential=company.credential)
            self.companies.append(company)
        self._seed_oauth_client(self.companies[0])
        if self.xero_url:
            self._seed_xero(self.companies[0])
        self.out.write(
            f"Demo companies: {', '.join(DEMO_COMPANIES)} "
            f"({created} created, {len(DEMO_COMPANIES) - created} already there); "
            f"webhooks subscribed. A new export job arrives every ~{NEW_JOB_EVERY_SECONDS} s."
        )

    def _seed_oauth_client(self, company: Company) -> None:
        """The demo OAuth credential, and its client registered again with this sandbox (which
        forgot it, and every token it issued, when it stopped)."""
        from exports.services.oauth import oauth_redirect_uri

        credential = Credential.objects.filter(
            name=DEMO_OAUTH_CREDENTIAL, kind=Credential.Kind.OAUTH
        ).first()
        if credential is None:
            credential = Credential(
                name=DEMO_OAUTH_CREDENTIAL,
                kind=Credential.Kind.OAUTH,
                oauth_client_id=f"sbx_demo_{secrets.token_hex(6)}",
            )
            credential.oauth_client_secret = f"sbx_ocs_{secrets.token_urlsafe(24)}"
        self._control(
            "POST",
            "/oauth-clients",
            {
                "clientId": credential.oauth_client_id,
                "clientSecret": credential.oauth_client_secret,
                "redirectUris": [oauth_redirect_uri()],
                "companyId": str(company.pleo_company_id),
                "name": "pleo-export-bridge (demo)",
            },
        )
        credential.api_base_url = self.url
        credential.access_token_ciphertext = credential.refresh_token_ciphertext = ""
        credential.access_token_expires_at = None
        credential.status = Credential.Status.OK
        credential.last_error = ""
        credential.save()
        webhook_endpoint_ensure(credential=credential)

    def _xero_control(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(
            method, f"{self.xero_url}/_sandbox{path}", json=body, timeout=TIMEOUT
        )
        response.raise_for_status()
        return response.json() if response.content else {}

    def _seed_xero(self, company: Company) -> None:
        """The company connected to the local Xero (consent given through its control API, as
        a person would on its page), synced, booking with the Xero adapter."""
        from exports import clock, crypto
        from exports.models import XeroConnection
        from exports.services.xero_connections import xero_redirect_uri as redirect_uri
        from exports.services.xero_sync import xero_sync_run

        self._xero_control(
            "POST",
            "/oauth-clients",
            {
                "clientId": self.xero_env["XERO_CLIENT_ID"],
                "clientSecret": self.xero_env["XERO_CLIENT_SECRET"],
                "redirectUris": [redirect_uri()],
                "name": "pleo-export-bridge (demo)",
            },
        )
        tenants = self._xero_control("GET", "/tenants")["data"]
        tenant = next(t for t in tenants if t["name"] == company.name)
        tenant["id"] = tenant["tenantId"]
        tokens = self._xero_control(
            "POST",
            "/oauth/tokens",
            {"clientId": self.xero_env["XERO_CLIENT_ID"], "tenantIds": [tenant["id"]]},
        )["data"]
        connection, _ = XeroConnection.objects.update_or_create(
            company=company,
            defaults={
                "tenant_id": uuid.UUID(tenant["id"]),
                "tenant_name": company.name,
                "status": XeroConnection.Status.OK,
                "last_error": "",
                "scopes_granted": tokens["scope"],
                "base_currency": "DKK",
                "access_token_ciphertext": crypto.encrypt(tokens["access_token"]),
                "refresh_token_ciphertext": crypto.encrypt(tokens["refresh_token"]),
                "access_token_expires_at": clock.now(),  # refreshed at the first call
            },
        )
        xero_sync_run(connection=connection)
        Company.objects.filter(pk=company.pk).update(accounting_adapter="xero")
        self.xero_company = company
        self.out.write(f"{company.name} books in the local Xero ({self.xero_url}).")

    def _map_xero_codes(self, job_id: str) -> None:
        """Every Pleo code of the job's items mapped in the demo company's Xero mapping."""
        from exports.models import XeroMapping
        from exports.services.xero_mapping import pleo_codes_of_item

        items = self._control("GET", f"/jobs/{job_id}/export-items")["data"]
        for code in {c for item in items for c in pleo_codes_of_item(item=item)}:
            if code.kind in XERO_DEMO_TARGETS:
                XeroMapping.objects.get_or_create(
                    company=self.xero_company,
                    kind=code.kind,
                    pleo_code=code.code,
                    defaults={"xero_code": XERO_DEMO_TARGETS[code.kind]},
                )

    # --- while running -------------------------------------------------------------------------

    def step(self) -> None:
        if not self.enabled or not self.companies:
            return
        now = time.monotonic()
        if now >= self.next_job_at:
            self.next_job_at = now + NEW_JOB_EVERY_SECONDS
            try:
                self._new_job()
            except requests.RequestException as exc:
                self.err.write(f"[sandbox] could not create a demo job: {exc}")
        self._print_new_audit_entries()

    def _new_job(self) -> None:
        """A bookkeeper of a random demo company clicks Export. As in Pleo, a company with an
        unfinished job cannot export again (409 EXPORT_ALREADY_IN_PROGRESS): another is tried."""
        for company in self.rng.sample(self.companies, len(self.companies)):
            in_xero = self.xero_company is not None and company.pk == self.xero_company.pk
            response = requests.post(
                f"{self.url}/_sandbox/jobs",
                json={
                    "companyId": str(company.pleo_company_id),
                    "items": self.rng.randint(1, 4),
                    "conflictCheck": True,
                    "notify": not in_xero,
                },
                timeout=TIMEOUT,
            )
            if response.status_code == 409:
                continue
            response.raise_for_status()
            job = response.json()["data"]
            if in_xero:  # its codes mapped before the webhook tells the bridge
                self._map_xero_codes(job["id"])
                self._control("POST", f"/jobs/{job['id']}/webhook")
            self.out.write(
                f"[sandbox] {company.name}: a bookkeeper exported {job['numberOfItems']} "
                f"item(s) -> job {job['id'][:8]} created (pending)"
            )
            return

    def _print_new_audit_entries(self) -> None:
        entries = list(
            AuditEntry.objects.filter(id__gt=self.last_audit_id, step__in=NOTABLE_STEPS)
            .select_related("company", "export_job")
            .order_by("id")[:50]
        )
        newest = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first()
        self.last_audit_id = max(self.last_audit_id, newest or 0)
        for entry in entries:
            job = f" job {str(entry.export_job.pleo_job_id)[:8]}" if entry.export_job else ""
            company = entry.company.name if entry.company else "-"
            self.out.write(
                f"[bridge]  {company}:{job} {NOTABLE_STEPS[entry.step]} (via {entry.trigger})"
            )
