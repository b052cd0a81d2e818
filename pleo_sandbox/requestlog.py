"""A thread-safe log of every API request the sandbox received (control requests excluded)."""

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


class RequestLog:
    """Entries oldest first; past ``max_entries`` the oldest are dropped (long standalone runs)."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self.max_entries = max_entries
        self._cond = threading.Condition()
        self._entries: list[dict] = []
        self._ids = itertools.count(1)

    def start(self, entry: dict) -> dict:
        with self._cond:
            entry["id"] = next(self._ids)
            self._entries.append(entry)
            if len(self._entries) > self.max_entries:
                del self._entries[: len(self._entries) - self.max_entries]
            self._cond.notify_all()
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

    def clear(self) -> None:
        with self._cond:
            self._entries.clear()

    def wait_for(self, predicate: Callable[[list[dict]], bool], timeout: float = 5.0) -> list[dict]:
        """Block until ``predicate(entries)`` is true; return the entries (raise TimeoutError)."""
        with self._cond:  # re-entrant: entries() takes it again
            if not self._cond.wait_for(lambda: predicate(self.entries()), timeout):
                raise TimeoutError("request log did not reach the expected state")
            return self.entries()
