"""A 1,000-item job, one small receipt an item, booked into the local Xero at its REAL limits
(60 calls a minute and 5,000 a day per organisation, 5 in flight, 10,000 a minute per app:
the sandbox's defaults, left as they are), carried by one run.

Paced at 60 a minute, its ~1,020 calls would take 17 minutes or more; the product's waits
(our budgets' and Xero's ``Retry-After``: ``XeroBudget.pause``) move the local Xero's clock and
our budgets' instead of sleeping (``tests.xero.support.VirtualWaits``: ``bx.waits``), so the run
takes well under a minute of wall time and the local Xero still counts every call in its own
windows.

Asserted from the local Xero's own records: no call refused (the sandbox refuses, with a 429,
any call past a limit, so none was ever exceeded), no sliding minute of its clock with more
than 60 calls, the day's remaining never below zero, and the calls exactly the minimum:
``ceil(items / 50)`` writes of documents + one per attachment + the reads (the organisation,
read by the validation and by the booking session), apart from a call Xero refused for an
expired token (the product's clock did not move with Xero's: it refreshes on that 401).
Figures (calls, Xero-clock minutes against the 60-a-minute floor, wall seconds) go to the
reliability figures file.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from datetime import datetime

import pytest

from exports.services.start_flow import Outcome
from exports.services.xero_connections import XERO_BUDGET
from tests.reliability.profile import Stopwatch, record
from tests.test_lifecycle import env  # noqa: F401 - the lifecycle tests' sandbox company
from tests.xero.test_booking import bx  # noqa: F401 - that company connected to the local Xero

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

ITEMS = 1000
MINUTE_LIMIT, DAY_LIMIT = 60, 5000  # the local Xero's defaults (xero_sandbox/switches.py)


def xero_seconds(entry: dict) -> float:
    return datetime.fromisoformat(entry["sandboxTime"].replace("Z", "+00:00")).timestamp()


def busiest_minute(times: list[float]) -> int:
    """The most calls in any 60-second window (sliding, as the local Xero counts)."""
    times = sorted(times)
    return max(
        (bisect_right(times, t + 59.999) - i for i, t in enumerate(times)),
        default=0,
    )


def test_a_1000_item_job_at_xeros_real_limits_stays_within_them_in_the_fewest_calls(
    bx,  # noqa: F811
    monkeypatch,
    settings,
):
    settings.XERO_BUDGET_WAIT_SECONDS = 90  # the default
    switches = bx.xero.state.switches
    assert (switches["minute_limit"], switches["day_limit"]) == (MINUTE_LIMIT, DAY_LIMIT)
    waits = bx.waits.install(monkeypatch)
    job_id = bx.job(ITEMS, receipts={"count": 1, "size": 2_000, "type": "application/pdf"})
    bx.xero.state.clear_requests()
    began = bx.xero.state.now().timestamp()
    watch = Stopwatch()
    result = bx.run()
    wall = watch.seconds()
    xero_minutes = (bx.xero.state.now().timestamp() - began) / 60

    assert result.outcome == Outcome.COMPLETED, result.error
    items = bx.env.items(job_id)
    assert len(items) == ITEMS and {i["status"] for i in items.values()} == {"successful"}
    documents = bx.documents()
    assert len(documents) == ITEMS
    calls = [e for e in bx.xero.state.requests() if "/api.xro/" in e["path"]]
    # The access token lives 30 minutes on Xero's clock, which moved; ours did not, so the
    # product refreshes it only when Xero refuses it (401, counted nowhere) and sends again.
    expired = [e for e in calls if e["status"] == 401]
    assert len(expired) <= math.ceil(xero_minutes / 30)
    calls = [e for e in calls if e["status"] != 401]
    by_kind = Counter(
        (e["method"], "attachment" if "/Attachments/" in e["path"] else e["path"].rsplit("/")[-1])
        for e in calls
    )
    attached = sum(
        len(bx.xero.state.attachments(bx.tenant.id, d["ManualJournalID"])) for d in documents
    )
    assert attached == ITEMS

    # Never past a limit, by the local Xero's own count: nothing refused, no minute over 60.
    assert [(e["path"], e["status"]) for e in calls if e["status"] != 200] == []
    assert busiest_minute([xero_seconds(e) for e in calls]) <= MINUTE_LIMIT
    remaining = [int(e["responseHeaders"]["X-DayLimit-Remaining"]) for e in calls]
    assert min(remaining) >= 0 and len(calls) <= DAY_LIMIT
    # The fewest calls: ceil(items / 50) writes, one per attachment, the organisation read twice.
    assert by_kind == {
        ("PUT", "ManualJournals"): math.ceil(ITEMS / 50),
        ("PUT", "attachment"): ITEMS,
        ("GET", "Organisation"): 2,
    }
    floor_minutes = len(calls) / MINUTE_LIMIT  # the physical limit: 60 calls a minute
    record(
        "xero_limits.1000_items",
        items=ITEMS,
        xero_calls=len(calls),
        refused_expired_token=len(expired),
        calls_by_kind={f"{m} {k}": n for (m, k), n in sorted(by_kind.items())},
        busiest_minute=busiest_minute([xero_seconds(e) for e in calls]),
        xero_clock_minutes=round(xero_minutes, 1),
        floor_minutes_at_60=round(floor_minutes, 1),
        our_budget=f"{XERO_BUDGET.limit}/min, burst {XERO_BUDGET.burst}",
        waited_minutes=round(sum(waits.waits) / 60, 1),
        wall_seconds=round(wall, 1),
    )
    assert xero_minutes >= floor_minutes  # the clock really was paced by the limit
