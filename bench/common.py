"""What every benchmark shares: a fresh database, Django set up on it, the sandbox, product
processes, percentiles and the report.

A benchmark runs against its own database: a new SQLite file in a temporary directory by default,
or ``--database-url`` (e.g. a PostgreSQL database that may be emptied). It never touches
``db.sqlite3``. Figures are printed, never asserted: these are measurements, not tests.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Starting and waiting for processes: as the tests do.
from tests import processes  # noqa: E402

free_port = processes.free_port
gunicorn = processes.gunicorn
manage = processes.manage
wait_until = processes.wait_until


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="Fewer iterations (a smoke run).")
    p.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", ""),
        help="Database to use (emptied!). Default: a new SQLite file in a temporary directory.",
    )
    p.add_argument(
        "--shapes",
        action="store_true",
        help="Also list the queries by SQL shape (literals and parameters as ?), per item.",
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="Redis for the Redis-broker variants (default redis://127.0.0.1:6379/0).",
    )
    return p


def setup_django(database_url: str = "", **extra_env: str) -> dict[str, str]:
    """Configure and set up Django on a fresh database; returns the environment for product
    processes started by the benchmark (same database, same keys)."""
    from cryptography.fernet import Fernet

    workdir = Path(tempfile.mkdtemp(prefix="pleo-bench-"))
    if not database_url:
        database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    env = processes.product_process_env(
        database_url,
        SECRET_KEY="bench-secret-key",
        CREDENTIALS_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        LOG_LEVEL="WARNING",
        DOTENV_FILE=str(workdir / "none.env"),
        **extra_env,
    )
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor == "postgresql":
        call_command("flush", "--no-input", verbosity=0)
    call_command("migrate", verbosity=0)
    env["BENCH_WORKDIR"] = str(workdir)
    return env


def start(argv: list[str], env: dict, name: str) -> subprocess.Popen:
    log = open(Path(env["BENCH_WORKDIR"]) / f"{name}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    process._log = log  # type: ignore[attr-defined]
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process._log.close()  # type: ignore[attr-defined]


def wait_http(url: str, timeout: float = 30) -> None:
    import requests

    def up():
        try:
            requests.get(url, timeout=1)
            return True
        except requests.RequestException:
            return False

    wait_until(up, timeout, 0.1, f"{url} answering")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"p50 {percentile(ms, 50):7.1f} ms  p95 {percentile(ms, 95):7.1f} ms  "
        f"p99 {percentile(ms, 99):7.1f} ms  mean {statistics.fmean(ms):7.1f} ms  (n={len(ms)})"
    )


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a live process, in MB; 0 when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def process_tree(pid: int) -> list[int]:
    """``pid`` and every descendant (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def header(title: str) -> None:
    from django.db import connection

    print(f"\n=== {title} ===")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {platform.node() or 'host'} · "
        f"{os.cpu_count()} CPU · Python {platform.python_version()} · "
        f"database {connection.vendor}"
    )


def add_company(state, sandbox_url: str, name: str):
    """A sandbox company with its own API key, added to the product as an operator would
    (``company_add_or_update``): ``(remote, key, saved)``."""
    import uuid

    from exports.services.companies import company_add_or_update

    remote = state.add_company(name)
    key = state.add_api_key(remote.id)
    saved = company_add_or_update(
        name=name, pleo_company_id=uuid.UUID(remote.id), api_key=key.key, api_base_url=sandbox_url
    )
    return remote, key, saved


def make_companies(state, sandbox_url: str, n: int, *, prefix: str = "Bench") -> list:
    """``n`` sandbox companies with their own API key, and the same companies in the product
    (bulk-created: the benchmarks measure running, not setting up)."""
    import uuid

    from exports.models import Company, Credential, WebhookEndpoint

    remotes = []
    credentials = []
    for i in range(n):
        remote = state.add_company(f"{prefix} {i}")
        key = state.add_api_key(remote.id)
        remotes.append(remote)
        credential = Credential(
            name=f"{prefix} {i} key", kind=Credential.Kind.API_KEY, api_base_url=sandbox_url
        )
        credential.api_key = key.key
        credentials.append((credential, key))
    Credential.objects.bulk_create([c for c, _ in credentials], batch_size=500)
    saved = {c.name: c for c in Credential.objects.filter(name__startswith=f"{prefix} ")}
    WebhookEndpoint.objects.bulk_create(
        [WebhookEndpoint(credential=c) for c in saved.values()], batch_size=500
    )
    Company.objects.bulk_create(
        [
            Company(
                name=f"{prefix} {i}",
                pleo_company_id=uuid.UUID(remote.id),
                credential=saved[f"{prefix} {i} key"],
            )
            for i, remote in enumerate(remotes)
        ],
        batch_size=500,
    )
    keys = [key for _, key in credentials]
    return list(zip(remotes, keys, strict=True))


class QueryCounter:
    """Counts every statement a connection sends, by kind, with no cap (unlike Django's debug log).

    ``count`` is the queries: every statement through Django's cursor except transaction control,
    plus PostgreSQL's connection health check (``SELECT 1``, sent by ``is_usable()`` on the raw
    connection after ``close_old_connections()`` when ``CONN_HEALTH_CHECKS`` is on). Transaction
    control is counted apart, in ``control`` (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE), because
    the two backends send it differently:

    * SQLite: Django sends ``BEGIN IMMEDIATE`` through the cursor (seen by the execute wrapper);
      COMMIT and ROLLBACK are the driver's ``commit()``/``rollback()``, counted when the
      connection is in a transaction;
    * PostgreSQL: psycopg sends ``BEGIN`` itself before the first statement of a transaction, and
      ``COMMIT``/``ROLLBACK`` on ``commit()``/``rollback()``; none passes through Django's cursor,
      so each ``commit()``/``rollback()`` of a connection that is in a transaction counts one
      BEGIN and one COMMIT (or ROLLBACK). A ``commit()`` with nothing sent sends nothing.

    SAVEPOINT and RELEASE go through the cursor on both. ``transactions`` is the number of BEGINs
    (transactions begun). ``connections`` counts connections opened meanwhile (their setup is not
    counted as queries).
    """

    CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
    _TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE)\s+"([^"]+)"', re.IGNORECASE)
    _LITERAL = re.compile(r"'[^']*'|\b\d+(?:\.\d+)?\b|%s")
    _LIST = re.compile(r"\((?:\?(?:, )?)+\)(?:, \((?:\?(?:, )?)+\))*")

    def __init__(self, connection):
        self.connection = connection
        self.count = 0
        self.kinds: dict[str, int] = {}
        self.shapes: Counter[str] = Counter()  # every statement, by shape (``show_shapes``)
        self.control: dict[str, int] = {}
        self.connections = 0

    @property
    def transactions(self) -> int:
        return self.control.get("BEGIN", 0)

    def _add(self, kind: str, table: str = "") -> None:
        if kind in self.CONTROL:
            self.control[kind] = self.control.get(kind, 0) + 1
            return
        self.count += 1
        key = f"{kind} {table}".strip()
        self.kinds[key] = self.kinds.get(key, 0) + 1

    def __call__(self, execute, sql, params, many, context):
        words = sql.split()
        first = words[0].upper()  # ROLLBACK TO SAVEPOINT counts as a ROLLBACK
        if first == "SELECT" and " FOR UPDATE" in sql.upper():
            first = "SELECT FOR UPDATE"
        match = self._TABLE.search(sql)
        table = match.group(1) if match else " ".join(words[1:2])
        self._add(first, table)
        self.shapes[self._LIST.sub("(…)", self._LITERAL.sub("?", sql))] += 1
        return execute(sql, params, many, context)

    def _in_transaction(self) -> bool:
        raw = self.connection.connection
        if raw is None:
            return False
        pgconn = getattr(raw, "pgconn", None)
        if pgconn is not None:  # psycopg 3
            from psycopg.pq import TransactionStatus

            return pgconn.transaction_status != TransactionStatus.IDLE
        return bool(getattr(raw, "in_transaction", False))  # sqlite3

    def _wrap_end(self, name: str, word: str):
        original = getattr(self.connection, name)

        def wrapped(*args, **kwargs):
            if self._in_transaction():
                if self.connection.vendor == "postgresql":
                    self._add("BEGIN")  # sent by psycopg, unseen by the execute wrapper
                self._add(word)
            return original(*args, **kwargs)

        return wrapped

    def _is_usable(self):
        original = self._original_is_usable

        def wrapped(*args, **kwargs):
            if self.connection.vendor == "postgresql" and self.connection.connection is not None:
                self._add("SELECT", "1 (connection health check)")
            return original(*args, **kwargs)

        return wrapped

    def _opened(self, sender, connection, **kwargs):
        if connection.alias == self.connection.alias and threading.get_ident() == self._thread:
            self.connections += 1  # this thread's (the sandbox serves from its own threads)

    def __enter__(self):
        from django.db.backends.signals import connection_created

        self._thread = threading.get_ident()
        self._cm = self.connection.execute_wrapper(self)
        self._cm.__enter__()
        self._original_is_usable = self.connection.is_usable
        self.connection._commit = self._wrap_end("_commit", "COMMIT")
        self.connection._rollback = self._wrap_end("_rollback", "ROLLBACK")
        self.connection.is_usable = self._is_usable()
        connection_created.connect(self._opened)
        return self

    def __exit__(self, *exc):
        from django.db.backends.signals import connection_created

        connection_created.disconnect(self._opened)
        for name in ("_commit", "_rollback", "is_usable"):
            try:
                delattr(self.connection, name)
            except AttributeError:
                pass
        self._cm.__exit__(*exc)

    def show(self, per: int = 1) -> None:
        """The queries by kind (and transaction control), divided by ``per``."""
        fmt = "{:10.2f}" if per != 1 else "{:10.0f}"
        for kind, count in sorted(self.kinds.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"    {fmt.format(count / per)}  {kind}")
        print(f"    {fmt.format(self.count / per)}  = queries")
        for word in self.CONTROL:
            if self.control.get(word):
                print(f"    {fmt.format(self.control[word] / per)}  {word} (transaction control)")
        if self.connections:
            print(f"    {self.connections:10d}  connections opened (in all)")

    def show_shapes(self, per: int = 1, *, least: float = 0.05, width: int = 150) -> None:
        """The statements by SQL shape, divided by ``per``, those at ``least`` or more."""
        for shape, count in self.shapes.most_common():
            if count / per >= least:
                print(f"    {count / per:10.2f}  {shape[:width]}")
