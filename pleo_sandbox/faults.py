"""Fault injection: make the next N matching requests misbehave.

A fault matches on method, path (exact, ``{name}`` template or regex), optionally on the JSON body
(``body_match``: a dict whose key/values must all appear in the body, or in one element of a list
body) and on a job id (in the path or in the body's ``jobId``). The first matching fault, in the
order they were added, is used; its ``count`` is decremented and it disappears at zero
(``count=None``: every matching request until removed).

Kinds (parameters in brackets):

``status``                  answer ``status`` (default 503) with ``body`` and ``headers``
                            [status, body, headers, apply: process the request first]
``rate_limit``              429 with ``Retry-After: retry_after`` [retry_after, body]
``latency``                 sleep ``seconds`` then answer normally [seconds]
``stall``                   sleep ``seconds`` (default: the ``stall_seconds`` switch), past the
                            client's read timeout; then, with ``apply``, process the request and
                            send the (late) answer, otherwise close the connection unprocessed
                            [seconds, apply]
``reset``                   close the connection (TCP RST) without answering; nothing applied
``apply_then_drop``         process the request, then close the connection without answering
``other_integration_starts`` when a ``started`` event arrives for a pending job, another
                            integration (identity ``other-integration``) starts it first, so the
                            request gets 422; defaults to POST /v3/export-job-events with
                            ``body_match={"event": "started"}``
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from pleo_sandbox.rendering import camel_fields

FAULT_KINDS = (
    "status",
    "rate_limit",
    "latency",
    "stall",
    "reset",
    "apply_then_drop",
    "other_integration_starts",
)
# What a fault is given (:class:`Fault`'s parameters), in the order ``to_dict`` shows them.
FAULT_PARAMETERS = (
    "kind",
    "method",
    "path",
    "path_regex",
    "count",
    "body_match",
    "job_id",
    "status",
    "body",
    "headers",
    "retry_after",
    "seconds",
    "apply",
)


def _template_to_regex(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^/{}]+\})", path)
    pattern = "".join(
        "[^/]+" if p.startswith("{") and p.endswith("}") else re.escape(p) for p in parts
    )
    return re.compile(pattern)


def _body_has(body: Any, expected: dict) -> bool:
    if isinstance(body, dict):
        return all(k in body and body[k] == v for k, v in expected.items())
    if isinstance(body, list):
        return any(_body_has(element, expected) for element in body)
    return False


@dataclass
class Fault:
    kind: str
    method: str | None = None
    path: str | None = None
    path_regex: str | None = None
    count: int | None = 1
    body_match: dict | None = None
    job_id: str | None = None
    status: int = 503
    body: Any = None
    headers: dict[str, str] | None = None
    retry_after: float = 1
    seconds: float | None = None
    apply: bool = False
    id: str = field(default_factory=lambda: f"flt_{uuid.uuid4().hex[:12]}")
    hits: int = 0
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if self.kind == "other_integration_starts":
            self.method = self.method or "POST"
            if self.path is None and self.path_regex is None:
                self.path = "/v3/export-job-events"
            if self.body_match is None:
                self.body_match = {"event": "started"}
        if self.method is not None:
            self.method = self.method.upper()
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1 (or None for unlimited)")
        if not 100 <= int(self.status) <= 599:
            raise ValueError("status must be an HTTP status code")
        if self.body_match is not None and not isinstance(self.body_match, dict):
            raise ValueError("body_match must be an object")
        if self.path_regex is not None:
            self._pattern = re.compile(self.path_regex)
        elif isinstance(self.path, re.Pattern):
            self._pattern = self.path
            self.path_regex, self.path = self.path.pattern, None
        elif self.path is not None:
            self._pattern = _template_to_regex(self.path)

    def matches(self, method: str, path: str, body: Any) -> bool:
        if self.method is not None and self.method != method.upper():
            return False
        if self._pattern is not None and not self._pattern.fullmatch(path):
            return False
        if self.body_match is not None and not _body_has(body, self.body_match):
            return False
        if self.job_id is not None:
            in_body = isinstance(body, dict) and body.get("jobId") == self.job_id
            if self.job_id not in path.split("/") and not in_body:
                return False
        return True

    def to_dict(self) -> dict:
        return camel_fields(self, "id", *FAULT_PARAMETERS, "hits")


class FaultRegistry:
    """Thread-safe list of active faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault_id: str) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) != before

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, method: str, path: str, body: Any) -> Fault | None:
        """The first fault matching this request, consumed once (removed when exhausted)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path, body):
                    fault.hits += 1
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count == 0:
                            self._faults.remove(fault)
                    return fault
        return None
