"""Shared pieces of the reliability scenarios: seeding, product processes, and the figures read
back from the sandbox's own logs (what Pleo would have seen) and from our database."""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from django.db.models import Count

from exports import clock
from exports.models import Company, JournalEntry
from exports.services.companies import company_add_or_update
from pleo_sandbox.signing import sign
from tests import processes, secrets_registry

EVENTS = "/v3/export-job-events"
FINAL_EVENTS = ("completed", "completed_with_errors", "failed")
TERMINAL = ("completed", "completed_with_errors", "failed")


@dataclass
class Seeded:
    """Companies made in the sandbox and in our database; jobs created so far."""

    sandbox: object
    companies: list = field(default_factory=list)  # (remote company, our Company)
    jobs: dict = field(default_factory=dict)  # job id -> (company id, createdAt)
    secrets: set = field(default_factory=set)

    @property
    def state(self):
        return self.sandbox.state

    def company_of(self, job_id: str) -> str:
        return self.jobs[job_id][0]

    def add_job(self, remote_company_id: str, *, items=1, notify=False, **kw) -> str:
        job = self.state.create_job(remote_company_id, items, notify=notify, **kw)
        self.jobs[job["id"]] = (remote_company_id, job["createdAt"])
        return job["id"]

    def statuses(self) -> dict[str, str]:
        return {job_id: self.state.get_job(job_id)["job"]["status"] for job_id in self.jobs}

    def all_final(self) -> bool:
        return all(status in TERMINAL for status in self.statuses().values())


def seed_companies(sandbox, n: int, *, prefix: str = "Reliability", subscribe=False) -> Seeded:
    """``n`` sandbox companies, each with its own API key, added to our database."""
    from exports.services.subscriptions import webhooks_subscribe

    seeded = Seeded(sandbox=sandbox)
    for i in range(n):
        remote = sandbox.state.add_company(f"{prefix} {i}")
        key = sandbox.state.add_api_key(remote.id)
        seeded.secrets.add(secrets_registry.register(key.key))
        saved = company_add_or_update(
            name=f"{prefix} {i}",
            pleo_company_id=uuid.UUID(remote.id),
            api_key=key.key,
            api_base_url=sandbox.url,
        )
        if subscribe:
            webhooks_subscribe(credential=saved.company.credential)
            saved.endpoint.refresh_from_db()
            for entry in saved.endpoint.secret_entries():
                seeded.secrets.add(secrets_registry.register(entry["secret"]))
        seeded.companies.append((remote, saved.company))
    return seeded


def delivery_secrets(state) -> set[str]:
    """Signatures of every webhook the sandbox delivered (they must never be logged either)."""
    found = set()
    for delivery in state.webhook_deliveries():
        signature = delivery.get("signature") or ""
        found.add(signature)
        found.update(part for part in signature.split(" ") if part)
        found.update(part.split(",", 1)[-1] for part in signature.split(" ") if "," in part)
    return {secrets_registry.register(s) for s in found if len(s) > 8}


def assert_no_secret_in(texts: dict[str, str], secrets: set[str]) -> None:
    leaks = [
        (name, secret[:6] + "…")
        for name, text in texts.items()
        for secret in secrets
        if secret and secret in text
    ]
    assert not leaks, f"secrets found in process logs: {leaks}"


def signed_delivery(whsec: str, job: dict) -> tuple[bytes, dict]:
    """A signed ``v1.export-job.created`` delivery of ``job`` (body, headers), as Pleo sends
    it; the signature is registered as a secret that must never be logged."""
    body = json.dumps(
        {
            "data": {key: job[key] for key in ("companyId", "createdAt", "id", "status")},
            "eventId": str(uuid.uuid4()),
            "eventType": "v1.export-job.created",
        }
    ).encode()
    msg_id = f"msg_{uuid.uuid4().hex}"
    timestamp = int(clock.now().timestamp())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": secrets_registry.register(sign(whsec, msg_id, timestamp, body)),
    }
    return body, headers


# --- product processes ----------------------------------------------------------------------------


def product_env(base_env: dict, **extra) -> dict:
    """A product process's environment: logs at DEBUG, and this process's SECRET_KEY so that
    tasks it enqueues (signed with the key) are accepted by the workers."""
    from django.conf import settings

    env = {**base_env, "LOG_LEVEL": "DEBUG", "Q_WORKERS": "1", "SECRET_KEY": settings.SECRET_KEY}
    env.update({key: str(value) for key, value in extra.items()})
    return env


class Processes:
    """Product processes started by one scenario; all stopped at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list = []
        self.logs: list[Path] = []

    def start(self, name: str, argv: list[str], env: dict):
        path = self.tmp_path / f"{name}-{len(self.logs)}.log"
        process = processes.start(argv, env, path)
        self.started.append(process)
        self.logs.append(path)
        return process

    def qcluster(self, name: str, env: dict):
        return self.start(name, processes.manage("qcluster"), env)

    def web(self, env: dict, port: int):
        process = self.start(
            "web", processes.manage("runserver", f"127.0.0.1:{port}", "--noreload"), env
        )
        processes.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30)
        return process

    def stop(self, process) -> None:
        processes.stop(process)

    def stop_all(self) -> None:
        for process in self.started:
            processes.stop(process)

    def texts(self) -> dict[str, str]:
        return {path.name: path.read_text(errors="replace") for path in self.logs if path.exists()}

    def crashes(self) -> int:
        """How many times a process reached its ``PLEO_CRASH_AT`` point (and killed itself)."""
        return sum(text.count("PLEO_CRASH_AT: crash point") for text in self.texts().values())

    def tracebacks(self) -> list[str]:
        return [name for name, text in self.texts().items() if "Traceback" in text]


# --- figures from the sandbox's logs --------------------------------------------------------------


def started_posts(log: list[dict]) -> list[dict]:
    return [
        e
        for e in log
        if e["method"] == "POST"
        and e["path"] == EVENTS
        and isinstance(e["body"], dict)
        and e["body"].get("event") == "started"
    ]


def max_attempts(log: list[dict]) -> int:
    """The most attempts one call took: a streak of identical consecutive requests of one run
    (same X-Request-Id, method, path, query and body), each after a failed one (no answer, or an
    error status), i.e. the first attempt and its retries."""
    best = 0
    by_run: dict[str, list[dict]] = defaultdict(list)
    for entry in log:
        by_run[entry["requestId"] or ""].append(entry)
    for entries in by_run.values():
        previous, failed, streak = None, False, 0
        for entry in sorted(entries, key=lambda e: e["startedMonotonic"]):
            key = (entry["method"], entry["path"], repr(entry["query"]), repr(entry["body"]))
            streak = streak + 1 if key == previous and failed else 1
            previous, failed = key, entry["status"] is None or entry["status"] >= 400
            best = max(best, streak)
    return best


def overlapping_runs(log: list[dict], company_of_job: dict[str, str]) -> tuple[int, int]:
    """(runs seen, overlaps): runs are X-Request-Ids; two runs of one company overlap when one's
    first request starts before the other's last one ended."""
    spans: dict = defaultdict(lambda: defaultdict(lambda: [float("inf"), 0.0]))
    for entry in log:
        company_id = None
        if entry["path"] == "/v3/export-jobs":
            company_id = (entry["query"].get("company_id") or [None])[0]
        elif entry["path"].startswith("/v3/export-jobs/"):
            company_id = company_of_job.get(entry["path"].split("/")[3])
        elif isinstance(entry["body"], dict) and "jobId" in entry["body"]:
            company_id = company_of_job.get(entry["body"]["jobId"])
        if company_id is None or not entry["requestId"]:
            continue
        span = spans[company_id][entry["requestId"]]
        span[0] = min(span[0], entry["startedMonotonic"])
        span[1] = max(span[1], entry.get("endedMonotonic") or entry["startedMonotonic"])
    runs, overlaps = 0, 0
    for runs_of_company in spans.values():
        intervals = sorted(runs_of_company.values())
        runs += len(intervals)
        for (_, end), (start, _) in zip(intervals, intervals[1:], strict=False):
            if end > start:
                overlaps += 1
    return runs, overlaps


def job_figures(seeded: Seeded) -> dict:
    """The invariants of every scenario, as counts (the assertions compare them with zero)."""
    state = seeded.state
    log = state.requests()
    jobs = seeded.jobs
    started = started_posts(log)
    accepted = Counter(e["body"]["jobId"] for e in started if e["status"] == 202)
    views = {job_id: state.get_job(job_id) for job_id in jobs}
    started_events = {
        job_id: [e for e in view["events"] if e["event"] == "started" and e["accepted"]]
        for job_id, view in views.items()
    }
    final_events = {
        job_id: [e for e in view["events"] if e["event"] in FINAL_EVENTS and e["accepted"]]
        for job_id, view in views.items()
    }
    # Each item's outcome accepted once: count item updates per (job, entry) that Pleo applied.
    item_reports = Counter()
    for job_id, view in views.items():
        for update in view["itemUpdates"]:
            for item in update["updates"]:
                if item["accountingEntryId"] not in update["errors"]:
                    item_reports[(job_id, item["accountingEntryId"])] += 1
    # Oldest first per company, by when the `started` that Pleo accepted was sent.
    sent_at = defaultdict(list)
    for entry in started:
        sent_at[(entry["body"]["jobId"], entry["requestId"])].append(entry["startedMonotonic"])
    order_violations = 0
    by_company = defaultdict(list)
    for job_id, events in started_events.items():
        times = sent_at.get((job_id, events[0]["requestId"])) if events else None
        if times:
            by_company[seeded.company_of(job_id)].append((min(times), jobs[job_id][1]))
    for starts in by_company.values():
        created_in_start_order = [created for _, created in sorted(starts)]
        if created_in_start_order != sorted(created_in_start_order):
            order_violations += 1
    runs, overlaps = overlapping_runs(log, {j: c for j, (c, _) in jobs.items()})
    journal_duplicates = (
        JournalEntry.objects.values("accounting_entry_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    statuses = Counter(view["job"]["status"] for view in views.values())
    return {
        "jobs": len(jobs),
        "statuses": dict(statuses),
        "unfinished": sum(statuses[s] for s in ("pending", "in_progress")),
        "started_posts_sent": len(started),
        "started_posts_answered_202": sum(accepted.values()),
        # Accepted by Pleo (the job's own event record), answered or not (applied then dropped).
        "started_posts_accepted": sum(
            1 for events in started_events.values() for e in events if e["requestId"]
        ),
        "started_duplicates": sum(max(0, len(e) - 1) for e in started_events.values()),
        "started_not_on_pending": sum(
            1
            for events in started_events.values()
            for e in events
            if e["statusBefore"] != "pending"
        ),
        "jobs_never_started_by_us": sum(
            1 for events in started_events.values() if not any(e["requestId"] for e in events)
        ),
        "final_events": sum(len(e) for e in final_events.values()),
        "final_event_duplicates": sum(max(0, len(e) - 1) for e in final_events.values()),
        "item_reports": sum(item_reports.values()),
        "item_report_duplicates": sum(n - 1 for n in item_reports.values() if n > 1),
        "journal_entries": JournalEntry.objects.count(),
        "journal_duplicates": journal_duplicates,
        "oldest_first_violations": order_violations,
        "runs": runs,
        "overlaps": overlaps,
        "max_attempts": max_attempts(log),
        "requests": len(log),
    }


def assert_invariants(figures: dict, *, all_started_by_us: bool = True) -> None:
    assert figures["unfinished"] == 0, figures
    assert figures["started_duplicates"] == 0, figures
    assert figures["started_not_on_pending"] == 0, figures
    if all_started_by_us:
        assert figures["jobs_never_started_by_us"] == 0, figures
    assert figures["final_event_duplicates"] == 0, figures
    assert figures["item_report_duplicates"] == 0, figures
    assert figures["journal_duplicates"] == 0, figures
    assert figures["oldest_first_violations"] == 0, figures
    assert figures["overlaps"] == 0, figures


def companies_with_lease() -> int:
    return Company.objects.filter(lease_token__isnull=False).count()
