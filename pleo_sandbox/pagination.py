"""Pleo's cursor/offset pagination (``CursorPageInfo``), as the sandbox reads it.

* ``limit``: page size; absent or 0 → the ``page_size_default`` switch; above the
  ``page_size_max`` switch → capped to it (the response's ``currentRequestPagination.limit``
  shows the size used).
* ``offset``, ``after``, ``before`` are mutually exclusive (400 otherwise).
* Cursors are base32 of a position (``^[A-Z2-7=~]+$``): ``startCursor`` is the first row of the
  page, ``endCursor`` the last; ``after=<endCursor>`` gives the next page, ``before=<startCursor>``
  the previous one. Both cursors are omitted on an empty page.
* ``sorting_keys``/``sorting_order``: keys the endpoint knows are applied (ASC/DESC, nulls
  ordering honoured), unknown keys are echoed and ignored; the two lists must be equally long.

Before paging, :func:`ordered` puts a list in the ``list_order`` switch's order.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from pleo_sandbox.errors import ApiError

PAGINATION_PARAMS = ("limit", "offset", "after", "before", "sorting_keys", "sorting_order")
PAGE_ORDERS = (
    "ASC",
    "ASC_NULLS_FIRST",
    "ASC_NULLS_LAST",
    "DESC",
    "DESC_NULLS_FIRST",
    "DESC_NULLS_LAST",
)
CURSOR_RE = re.compile(r"^[A-Z2-7=~]+$")
_CURSOR_PREFIX = "p"


def encode_cursor(position: int) -> str:
    return base64.b32encode(f"{_CURSOR_PREFIX}{position}".encode()).decode("ascii")


def decode_cursor(cursor: str, name: str) -> int:
    bad = ApiError(400, "BAD_REQUEST", f"Invalid cursor in '{name}'.")
    if not CURSOR_RE.match(cursor):
        raise bad
    try:
        text = base64.b32decode(cursor.replace("~", "")).decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad
    if not text.startswith(_CURSOR_PREFIX) or not text[1:].isdigit():
        raise bad
    return int(text[1:])


def _single(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(400, "BAD_REQUEST", f"Parameter '{name}' given more than once.")
    return values[0]


def _non_negative_int(query: dict[str, list[str]], name: str) -> int | None:
    raw = _single(query, name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "BAD_REQUEST", f"Parameter '{name}' must be an integer.")
    if value < 0:
        raise ApiError(400, "BAD_REQUEST", f"Parameter '{name}' must be at least 0.")
    return value


def _split_list(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or []:
        out.extend(v for v in value.split(",") if v)
    return out


def _sort(rows: list, keys: list[str], orders: list[str], fields: dict[str, Callable]) -> list:
    # Stable sorts from the last key to the first; None placement per order.
    for key, order in reversed(list(zip(keys, orders, strict=True))):
        getter = fields.get(key)
        if getter is None:
            continue
        descending = order.startswith("DESC")
        nulls_first = order.endswith("NULLS_FIRST") or (
            not order.endswith("NULLS_LAST") and descending
        )
        present = [r for r in rows if getter(r) is not None]
        missing = [r for r in rows if getter(r) is None]
        present.sort(key=getter, reverse=descending)
        rows = missing + present if nulls_first else present + missing
    return rows


def paginate(
    rows: Sequence[Any],
    query: dict[str, list[str]],
    *,
    default_limit: int,
    max_limit: int,
    sort_fields: dict[str, Callable] | None = None,
) -> tuple[list[Any], dict]:
    """Return ``(page, pagination)`` for ``rows`` already filtered and in list order."""
    limit = _non_negative_int(query, "limit")
    offset = _non_negative_int(query, "offset")
    after = _single(query, "after")
    before = _single(query, "before")
    if sum(x is not None for x in (offset, after, before)) > 1:
        raise ApiError(
            400, "BAD_REQUEST", "Parameters 'before', 'after' and 'offset' are mutually exclusive."
        )
    keys = _split_list(query.get("sorting_keys"))
    orders = _split_list(query.get("sorting_order"))
    if orders and len(orders) != len(keys):
        raise ApiError(
            400, "BAD_REQUEST", "'sorting_order' must have one entry per 'sorting_keys' entry."
        )
    for order in orders:
        if order not in PAGE_ORDERS:
            raise ApiError(400, "BAD_REQUEST", f"Invalid sorting order '{order}'.")
    if keys and not orders:
        orders = ["ASC"] * len(keys)
    rows = list(rows)
    if keys:
        rows = _sort(rows, keys, orders, sort_fields or {})

    requested_size = max(1, min(limit if limit else default_limit, max_limit))
    size = requested_size
    total = len(rows)
    if after is not None:
        start = decode_cursor(after, "after") + 1
    elif before is not None:
        end = min(decode_cursor(before, "before"), total)
        start = max(0, end - size)
        size = end - start
    else:
        start = offset or 0
    page = rows[start : start + size] if size > 0 else []

    current: dict[str, Any] = {
        "parameters": {k: list(v) for k, v in query.items() if k not in PAGINATION_PARAMS},
        "limit": requested_size,
    }
    if offset is not None:
        current["offset"] = offset
    if after is not None:
        current["after"] = after
    if before is not None:
        current["before"] = before
    if keys:
        current["sortingKeys"] = keys
        current["sortingOrder"] = orders
    info: dict[str, Any] = {
        "currentRequestPagination": current,
        "hasNextPage": start + len(page) < total,
        "hasPreviousPage": start > 0 and total > 0,
        "total": total,
    }
    if page:
        info["startCursor"] = encode_cursor(start)
        info["endCursor"] = encode_cursor(start + len(page) - 1)
    return page, info


def ordered(rows: list, key: Callable, *, order: str, seed: int) -> list:
    """``rows`` sorted by ``key``, then as the ``list_order`` switch says (chronological,
    reverse or shuffled; a shuffle is stable for a given seed, so paging through it stays
    consistent)."""
    rows = sorted(rows, key=key)
    if order == "reverse":
        rows.reverse()
    elif order == "shuffled":
        rows.sort(key=lambda r: hashlib.sha256(f"{seed}/{_row_id(r)}".encode()).digest())
    return rows


def _row_id(row: Any) -> str:
    if isinstance(row, tuple):
        return "/".join(_row_id(r) for r in row)
    for attr in ("id", "accounting_entry_id"):
        if hasattr(row, attr):
            return str(getattr(row, attr))
    return str(row)
