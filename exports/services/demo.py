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


def demo_company_id(name: str) -> uuid.UUID:
    return uuid.uuid5(DEMO_NAMESPACE, name)


class Demo:
    def __init__(self, *, command, sandbox_port: int, spawn, manage):
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
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/_sandbox/health", timeout=TIMEOUT).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"The Pleo sandbox did not answer at {self.url} within 20 s.")
        self.configure_sandbox()
        self.out.write(self.style.SUCCESS(f"Pleo sandbox: {self.url} (PLEO_SANDBOX=1)"))

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
            self._control("POST", "/companies", {"name": name, "companyId": str(pleo_id)})
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
            response = requests.post(
                f"{self.url}/_sandbox/jobs",
                json={
                    "companyId": str(company.pleo_company_id),
                    "items": self.rng.randint(1, 4),
                    "conflictCheck": True,
                },
                timeout=TIMEOUT,
            )
            if response.status_code == 409:
                continue
            response.raise_for_status()
            job = response.json()["data"]
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
