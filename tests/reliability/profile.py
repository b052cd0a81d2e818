"""Sizes of the reliability scenarios, and where their figures are written.

``RELIABILITY_PROFILE=ci`` (default) keeps every scenario at a size that fits ``.ci/run``;
``RELIABILITY_PROFILE=full`` runs the larger sizes below and produces the published figures
(``RELIABILITY.md``). Figures go to ``RELIABILITY_FIGURES`` or
``.reliability/figures-<profile>.json`` (git-ignored), one object per scenario, merged run by run.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROFILE = os.environ.get("RELIABILITY_PROFILE", "ci").strip().lower() or "ci"
if PROFILE not in ("ci", "full"):
    raise RuntimeError(f"RELIABILITY_PROFILE must be ci or full, not {PROFILE!r}")

_SIZES = {
    "ci": {
        # Scenario 1: two qclusters + web + check_exports loops, 8 processes in all.
        "load_companies": 25,
        "load_jobs_per_company": 4,
        # Scenario 2: rounds of a webhook and a poll racing for one new job.
        "race_rounds": 20,
        # Scenario 3: jobs per fault kind, and jobs of the mixed-fault storm.
        "fault_jobs": 2,
        "storm_jobs": 12,
        # Scenario 4: companies killed in parallel per crash point (one job each).
        "crash_companies": 4,
        # Scenario 5: jobs arriving while an old and a new worker overlap.
        "deploy_jobs": 16,
        # Scenario 8: the state machine.
        "sm_examples": 200,
        "sm_steps": 30,
    },
    "full": {
        "load_companies": 50,
        "load_jobs_per_company": 4,
        "race_rounds": 50,
        "fault_jobs": 6,
        "storm_jobs": 60,
        "crash_companies": 10,
        "deploy_jobs": 60,
        "sm_examples": 1000,
        "sm_steps": 40,
    },
}
SIZES = _SIZES[PROFILE]


def figures_path() -> Path:
    return Path(
        os.environ.get("RELIABILITY_FIGURES") or ROOT / ".reliability" / f"figures-{PROFILE}.json"
    )


def machine() -> dict:
    from django.db import connection

    database = connection.vendor
    if connection.vendor == "postgresql":
        version = connection.cursor().connection.info.server_version
        database = f"PostgreSQL {version // 10000}.{version % 10000}"
    elif connection.vendor == "sqlite":
        import sqlite3

        database = f"SQLite {sqlite3.sqlite_version}"
    from django.conf import settings

    return {
        "broker": "redis" if settings.Q_CLUSTER.get("redis") else "orm",
        "cpus": os.cpu_count(),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "database": database,
    }


def record(scenario: str, **figures) -> dict:
    """Merge one scenario's figures into the figures file; returns what was written."""
    path = figures_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "profile": PROFILE,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **figures,
    }
    # pytest-xdist's workers record at the same time: one at a time, each its own temporary file.
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        data[scenario] = entry
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
        tmp.replace(path)
    print(f"\n[reliability:{PROFILE}] {scenario}: {json.dumps(figures, default=str)}")
    return entry


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 1)
