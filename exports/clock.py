"""One injectable clock for the whole flow, so tests can move the product and the sandbox together.

``now()`` is the current aware UTC time plus an offset. Tests move it with ``advance()``; a
subprocess inherits an offset through ``PLEO_CLOCK_OFFSET_SECONDS`` (tests only).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from django.utils import timezone

_offset = timedelta(seconds=float(os.environ.get("PLEO_CLOCK_OFFSET_SECONDS", "0") or 0))


def now() -> datetime:
    return timezone.now() + _offset


def advance(seconds: float) -> None:
    global _offset
    _offset += timedelta(seconds=seconds)


def reset() -> None:
    global _offset
    _offset = timedelta(0)


def offset_seconds() -> float:
    return _offset.total_seconds()
