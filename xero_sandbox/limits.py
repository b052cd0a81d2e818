"""Xero's API limits (switches ``minute_limit`` 60, ``day_limit`` 5000, ``concurrent_limit`` 5 per
tenant, ``app_minute_limit`` 10000 per app), on the sandbox clock so tests move time instead of
sleeping.

Every Accounting API call with a valid token and a connected tenant counts once against its
tenant's minute and day windows and its app's minute window (sliding windows, counted together
or not at all: :meth:`pleo_sandbox.ratelimit.RateLimiter.take_all`), and holds one of the
tenant's in-flight slots while it runs. A refused call counts nowhere. The answers carry
``X-MinLimit-Remaining``, ``X-DayLimit-Remaining`` and ``X-AppMinLimit-Remaining`` (what is left
after this call); a refusal is 429 with ``Retry-After`` (whole seconds, rounded up; 1 for the
concurrency limit) and ``X-Rate-Limit-Problem``: ``minute``, ``day``, ``appminute`` or
``concurrent``.
"""

from __future__ import annotations

import threading
from enum import StrEnum

from pleo_sandbox.ratelimit import RateLimiter
from xero_sandbox.errors import problem

MINUTE = 60.0
DAY = 24 * 3600.0


class Problem(StrEnum):
    MINUTE = "minute"
    DAY = "day"
    APP_MINUTE = "appminute"
    CONCURRENT = "concurrent"


class Limits:
    def __init__(self, clock, switches: dict) -> None:
        self._switches = switches
        self._windows = RateLimiter(now=lambda: clock.now().timestamp())
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}

    def reset(self) -> None:
        self._windows.reset()
        with self._lock:
            self._in_flight.clear()

    def _checks(self, tenant_id: str, client_id: str) -> list[tuple[str, int, float]]:
        s = self._switches
        return [
            (f"minute:{tenant_id}:{client_id}", int(s["minute_limit"]), MINUTE),
            (f"day:{tenant_id}:{client_id}", int(s["day_limit"]), DAY),
            (f"appminute:{client_id}", int(s["app_minute_limit"]), MINUTE),
        ]

    def headers(self, tenant_id: str | None, client_id: str | None) -> dict[str, str]:
        if client_id is None:
            return {}
        names = ("X-MinLimit-Remaining", "X-DayLimit-Remaining", "X-AppMinLimit-Remaining")
        out = {}
        for name, (key, limit, window) in zip(
            names, self._checks(tenant_id or "-", client_id), strict=True
        ):
            if tenant_id is None and name != "X-AppMinLimit-Remaining":
                continue
            out[name] = str(self._windows.remaining(key, limit, window))
        return out

    def enter(self, tenant_id: str, client_id: str) -> None:
        """Count one call and take an in-flight slot, or raise Xero's 429."""
        key = f"{tenant_id}:{client_id}"
        with self._lock:
            if self._in_flight.get(key, 0) >= int(self._switches["concurrent_limit"]):
                raise self._refusal(Problem.CONCURRENT, 1.0, tenant_id, client_id)
            refused = self._windows.take_all(self._checks(tenant_id, client_id))
            if refused is not None:
                index, wait = refused
                which = (Problem.MINUTE, Problem.DAY, Problem.APP_MINUTE)[index]
                raise self._refusal(which, wait, tenant_id, client_id)
            self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def leave(self, tenant_id: str, client_id: str) -> None:
        key = f"{tenant_id}:{client_id}"
        with self._lock:
            self._in_flight[key] = max(self._in_flight.get(key, 0) - 1, 0)

    def _refusal(self, which: Problem, wait: float, tenant_id: str, client_id: str):
        headers = {
            "Retry-After": RateLimiter.retry_after_header(wait),
            "X-Rate-Limit-Problem": which.value,
            **self.headers(tenant_id, client_id),
        }
        return problem(429, "Too Many Requests", f"Rate limit exceeded: {which.value}", headers)
