"""A thread-safe log of every API request the sandbox received (control requests excluded), on
:class:`EntryLog` (also the webhook deliveries log's), and the redaction of what it keeps."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

REDACTED_HEADERS = {"authorization", "cookie", "proxy-authorization"}
# Body fields (form or JSON, e.g. OAuth token requests and answers) that never reach a log.
REDACTED_FIELDS = {
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "code",
    "code_verifier",
    "password",
}


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: ("<redacted>" if k.lower() in REDACTED_HEADERS else v) for k, v in headers.items()}


def redact_fields(body):
    """A copy of a dict body with the values of :data:`REDACTED_FIELDS` replaced."""
    if not isinstance(body, dict):
        return body
    return {k: ("<redacted>" if k in REDACTED_FIELDS else v) for k, v in body.items()}


class EntryLog:
    """A thread-safe list of dict entries, oldest first, that readers copy and wait on (the
    request log; the webhook deliveries log). ``what`` names it in a timeout."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._cond = threading.Condition()
        self._entries: list[dict] = []

    def append(self, entry: dict) -> dict:
        with self._cond:
            self._entries.append(entry)
            self._cond.notify_all()
            return entry

    def snapshot(self) -> list[dict]:
        """Copies of the entries (a reader never holds one the log still changes)."""
        with self._cond:
            return [dict(e) for e in self._entries]

    def clear(self) -> None:
        with self._cond:
            self._entries.clear()

    def wait_for(self, predicate: Callable[[list[dict]], bool], timeout: float = 5.0) -> list[dict]:
        """Block until ``predicate(snapshot)`` is true; return the snapshot (raise TimeoutError)."""
        with self._cond:  # re-entrant: snapshot() takes it again
            if not self._cond.wait_for(lambda: predicate(self.snapshot()), timeout):
                raise TimeoutError(
                    f"{self.what} did not reach the expected state: {self.snapshot()!r}"
                )
            return self.snapshot()


class RequestLog(EntryLog):
    """Entries oldest first; past ``max_entries`` the oldest are dropped (long standalone runs)."""

    def __init__(self, max_entries: int = 20_000) -> None:
        super().__init__("request log")
        self.max_entries = max_entries
        self._ids = itertools.count(1)

    def start(self, entry: dict) -> dict:
        with self._cond:
            entry["id"] = next(self._ids)
            self.append(entry)
            if len(self._entries) > self.max_entries:
                del self._entries[: len(self._entries) - self.max_entries]
            return entry

    def finish(self, entry: dict, **fields) -> None:
        with self._cond:
            entry.update(fields)
            entry["complete"] = True
            self._cond.notify_all()

    def update(self, entry: dict, **fields) -> None:
        with self._cond:
            entry.update(fields)
            self._cond.notify_all()

    def entries(
        self, *, method: str | None = None, path: str | None = None, complete_only: bool = False
    ) -> list[dict]:
        with self._cond:
            out = []
            for e in self._entries:
                if method is not None and e["method"] != method.upper():
                    continue
                if path is not None and e["path"] != path:
                    continue
                if complete_only and not e.get("complete"):
                    continue
                out.append(dict(e))
            return out
