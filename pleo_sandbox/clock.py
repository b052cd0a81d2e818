"""The sandbox clock: real UTC time plus an offset that tests control.

Pleo's notion of "now" (expiry, timestamps, webhook-timestamp) all come from one
:class:`SandboxClock`, so a test can move Pleo an hour forward without sleeping.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def iso(value: datetime | None) -> str | None:
    """Pleo's timestamp shape: ISO-8601 UTC, second precision, ``Z`` suffix."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime(ISO_FORMAT)


def wall_time() -> str:
    """The real time (not a sandbox clock) with microseconds, for log entries."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    """Parse an ISO-8601 timestamp (``Z`` or an offset); naive values are taken as UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class SandboxClock:
    """``now()`` is the real aware UTC time plus an offset; ``advance()`` moves the offset."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(seconds=offset_seconds)

    def now(self) -> datetime:
        with self._lock:
            offset = self._offset
        return datetime.now(UTC) + offset

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._offset += timedelta(seconds=seconds)
        return self.now()

    def set_offset(self, seconds: float) -> datetime:
        with self._lock:
            self._offset = timedelta(seconds=seconds)
        return self.now()

    @property
    def offset_seconds(self) -> float:
        with self._lock:
            return self._offset.total_seconds()
