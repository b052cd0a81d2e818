"""Crash points: a test hook that kills the process at a named stage boundary.

The reliability suite (``tests/reliability/``) proves that a worker killed at any boundary of the
flow leaves nothing done twice and nothing lost. The flow calls :func:`crash_point` at each
boundary; it does nothing unless the environment variable ``PLEO_CRASH_AT`` names that point:

``PLEO_CRASH_AT=after_started``     the first time this process reaches ``after_started``
``PLEO_CRASH_AT=mid_items:2``       the second time it reaches ``mid_items``

The process then sends itself SIGKILL: no ``finally``, no transaction commit, no lease release,
exactly like a machine losing power. Never set ``PLEO_CRASH_AT`` in production.

Points (in the order a job meets them):

``after_claim``          the claim ("starting") is committed; ``started`` not sent yet
``after_started``        Pleo accepted ``started``; nothing recorded yet
``mid_items``            an item's outcome is decided (committed, or waiting in its batch); the
                         next item not begun
``after_adapter_call``   the accounting adapter answered; its answer not recorded yet (the Xero
                         adapter reaches it first as soon as Xero answered a batch, before its
                         own record of the documents; the journal once per item of its batch,
                         inside the transaction that writes the entries and our records)
``before_final_event``   every item is final in Pleo; the final event not sent yet
"""

from __future__ import annotations

import os
import signal
from collections import Counter

POINTS = ("after_claim", "after_started", "mid_items", "after_adapter_call", "before_final_event")
ENV = "PLEO_CRASH_AT"

_hits: Counter[str] = Counter()


def _die(name: str) -> None:  # tests replace this to simulate a crash in-process
    os.write(2, f"PLEO_CRASH_AT: crash point {name} reached in pid {os.getpid()}\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)


def crash_point(name: str) -> None:
    """Kill this process here if ``PLEO_CRASH_AT`` names ``name`` (see the module docstring)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point.strip() != name:
        return
    _hits[name] += 1
    if _hits[name] == (int(nth) if nth.strip().isdigit() else 1):
        _die(name)
