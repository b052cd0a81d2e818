"""The steady rate limit (switches ``rate_limit_per_minute``, ``rate_limit_scope``,
``rate_limit_window_seconds``): at most N API requests per window per key, else 429.

Pleo documents 600 requests a minute (reference §6.2) but not what it counts per (token, client
or company), nor its 429 body and headers. The sandbox's reading: a sliding window over real
(monotonic) time, not the sandbox clock, so moving the clock to expire jobs never refills it;
only authenticated API requests count (OAuth endpoints and receipt downloads do not, nor a 401);
a refused request does not count; the answer is 429 ``TOO_MANY_REQUESTS`` with ``Retry-After``
(whole seconds, rounded up) saying when the oldest counted request leaves the window.

Scopes: ``credential`` (one window per API key or registered token, and per OAuth authorisation:
the access tokens a refresh rotates share one), ``oauth_client`` (the OAuth tokens of one client
share one; API keys keep their own) and ``global`` (one for the whole sandbox).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

RATE_LIMIT_SCOPES = ("credential", "oauth_client", "global")
MSG_RATE_LIMITED = "Rate limit exceeded."


def key_for(credential, scope: str) -> str:
    """The window a credential's requests count against. OAuth access tokens carry the label
    ``oauth:<client id>:<grant id>`` (``pleo_sandbox.oauth``)."""
    if scope == "global":
        return "global"
    label = credential.label or ""
    if label.startswith("oauth:"):
        _, client_id, grant_id = (label.split(":", 2) + ["", ""])[:3]
        return f"oauth_client:{client_id}" if scope == "oauth_client" else f"grant:{grant_id}"
    return f"credential:{credential.id}"


class RateLimiter:
    """Thread-safe sliding-window counters, one deque of grant times per key."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._granted: dict[str, deque[float]] = {}

    def reset(self) -> None:
        with self._lock:
            self._granted.clear()

    def _window(self, key: str, window: float, now: float) -> deque[float]:
        granted = self._granted.setdefault(key, deque())
        while granted and granted[0] <= now - window:
            granted.popleft()
        return granted

    def take(self, key: str, limit: int, window: float) -> float | None:
        """Count one request; None when allowed, else the seconds until one would be."""
        refused = self.take_all([(key, limit, window)])
        return None if refused is None else refused[1]

    def take_all(self, checks: list[tuple[str, int, float]]) -> tuple[int, float] | None:
        """Count one request against every ``(key, limit, window)`` at once, or against none:
        None when all allow it, else ``(index of the first full window, seconds to wait)``."""
        with self._lock:
            now = self._now()
            windows = [self._window(key, window, now) for key, _, window in checks]
            pairs = zip(windows, checks, strict=True)
            for index, (granted, (_, limit, window)) in enumerate(pairs):
                if len(granted) >= limit:
                    return index, max(granted[0] + window - now, 0.001)
            for granted in windows:
                granted.append(now)
            return None

    def remaining(self, key: str, limit: int, window: float) -> int:
        """How many more requests the window ``key`` allows now."""
        with self._lock:
            return max(limit - len(self._window(key, window, self._now())), 0)

    @staticmethod
    def retry_after_header(seconds: float) -> str:
        return str(max(1, math.ceil(seconds)))
