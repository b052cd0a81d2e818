"""Pleo's answers held against its published contract and against our readings of it.

Pure functions over decoded JSON (no HTTP, no model): :mod:`exports.services.contract` makes the
read-only calls and feeds the answers in; ``manage.py verify_pleo_contract`` prints the findings.
Each check yields :class:`Finding` rows: ``match``, ``mismatch`` or ``skipped``, one line each.

Two kinds of check:

* **Schema**: a body against the operation's response schema in ``docs/pleo-openapi/``
  (:mod:`exports.pleo.openapi`). Extra fields are allowed (the product ignores them).
* **Readings**: what the product relies on beyond the schema, which types several fields as plain
  strings: the enum of job and item statuses and failure types, the exact (upper) case of error
  types, the pagination fields the client follows, the shape and spelling of a subscription's
  ``eventTypes``, and where receipt files are served from.

Bodies are never quoted in a finding (an answer may hold a secret): only values of enum-like
fields, ids, counts and host names.
"""

from __future__ import annotations

import enum
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from exports.pleo.openapi import enum_values, load_spec, response_errors

EXPORT_API = "export-api-v3"
EXPORT_ITEMS = "export-items-v3"
SUBSCRIPTIONS = "webhook-subscriptions"
# The cursor pattern the spec gives the `after`/`before` query parameters: an `endCursor` that
# does not match it cannot be sent back as `after` (what the client does).
CURSOR_RE = re.compile(r"^[A-Z2-7=~]+$")
# Receipt files: on the API's own host or another pleo.io host (our reading; Pleo only says the
# URL is valid for 24 hours). Plain http only on loopback (the sandbox).
RECEIPT_DOMAIN = "pleo.io"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
SHOWN = 5  # examples quoted per finding


class Status(enum.StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status.value, "detail": self.detail}


def match(check: str, detail: str) -> Finding:
    return Finding(check, Status.MATCH, detail)


def mismatch(check: str, detail: str) -> Finding:
    return Finding(check, Status.MISMATCH, detail)


def skipped(check: str, detail: str) -> Finding:
    return Finding(check, Status.SKIPPED, detail)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def examples(values: Iterable[str]) -> str:
    values = list(values)
    more = f" and {len(values) - SHOWN} more" if len(values) > SHOWN else ""
    return "; ".join(values[:SHOWN]) + more


# --- Schema -----------------------------------------------------------------------------------


def schema_finding(
    check: str, pages: list[Any], method: str, path: str, spec: str, what: str
) -> Finding:
    """Every page (or single body) of one operation's 200 answer against its schema."""
    problems = []
    for number, body in enumerate(pages, 1):
        where = f"page {number}: " if len(pages) > 1 else ""
        problems += [where + p for p in response_errors(body, method, path, 200, spec)]
    schema = _response_schema_name(method, path, spec)
    if problems:
        return mismatch(
            check, f"{plural(len(problems), 'deviation')} from {schema}: {examples(problems)}"
        )
    return match(check, f"{what}: valid {schema}")


def _response_schema_name(method: str, path: str, spec: str) -> str:
    content = load_spec(spec)["paths"][path][method.lower()]["responses"]["200"]["content"]
    ref = next(iter(content.values()))["schema"].get("$ref", "")
    return ref.rsplit("/", 1)[-1] or f"{method} {path} 200"


# --- Enums ----------------------------------------------------------------------------------------


def enum_finding(
    check: str,
    rows: Iterable[Any],
    field: str,
    enum_name: str,
    *,
    what: str,
    ident: str = "id",
    spec: str = EXPORT_API,
    nullable: bool = False,
) -> Finding:
    """Every ``row[field]`` is a value of the spec's ``enum_name`` (or null when ``nullable``)."""
    allowed = set(enum_values(enum_name, spec))
    unknown: dict[str, list[str]] = {}
    seen: Counter[str] = Counter()
    for row in rows:
        if not isinstance(row, dict):
            continue
        value = row.get(field)
        if value is None and nullable:
            continue
        shown = value if isinstance(value, str) else repr(value)
        seen[shown] += 1
        if value not in allowed:
            unknown.setdefault(shown, []).append(str(row.get(ident, "?")))
    if unknown:
        parts = [
            f"{value!r} ({plural(len(ids), what)}, e.g. {ids[0]})"
            for value, ids in sorted(unknown.items())
        ]
        return mismatch(
            check, f"{examples(parts)} not in the v3 {enum_name} enum (a value we do not know)"
        )
    if not seen:
        return skipped(check, f"no {what} with a {field} to check")
    values = ", ".join(f"{v} ×{n}" for v, n in sorted(seen.items()))
    return match(check, f"every {field} is in {enum_name} ({values})")


# --- Pagination -------------------------------------------------------------------------------


def pagination_problems(pages: list[Any]) -> list[str]:
    """What the client's page loop (``after=endCursor`` while ``hasNextPage``) could not follow."""
    problems = []
    cursors: set[str] = set()
    for number, body in enumerate(pages, 1):
        info = body.get("pagination") if isinstance(body, dict) else None
        if not isinstance(info, dict):
            problems.append(f"page {number}: no pagination object")
            continue
        for flag in ("hasNextPage", "hasPreviousPage"):
            if not isinstance(info.get(flag), bool):
                problems.append(f"page {number}: {flag} is not a boolean")
        if info.get("hasNextPage") is True:
            cursor = info.get("endCursor")
            if not isinstance(cursor, str) or not cursor:
                problems.append(f"page {number}: hasNextPage without an endCursor")
            elif not CURSOR_RE.match(cursor):
                problems.append(f"page {number}: endCursor does not match {CURSOR_RE.pattern}")
            elif cursor in cursors:
                problems.append(f"page {number}: endCursor repeats an earlier page's")
            else:
                cursors.add(cursor)
    return problems


def pagination_finding(check: str, lists: dict[str, list[Any]], capped: Iterable[str]) -> Finding:
    """``lists``: the pages of each list read, by name; ``capped``: lists cut at the page cap."""
    problems = [f"{name} {p}" for name, pages in lists.items() for p in pagination_problems(pages)]
    if problems:
        return mismatch(check, examples(problems))
    pages = sum(len(p) for p in lists.values())
    note = f" (stopped early, by design: {', '.join(capped)})" if capped else ""
    return match(
        check,
        f"hasNextPage/hasPreviousPage booleans, endCursor usable as after= on "
        f"{plural(pages, 'page')}{note}",
    )


# --- Error types ------------------------------------------------------------------------------


def error_type_finding(
    check: str, *, status: int | None, error_type: str | None, expected_status: int, expected: str
) -> Finding:
    """A read-only call that must fail: its status and the exact ``type`` Pleo documents."""
    if status != expected_status:
        return mismatch(check, f"expected HTTP {expected_status} {expected}, got {status}")
    if error_type is None:
        return mismatch(check, f"HTTP {status} without an error body `type` (expected {expected})")
    if error_type == expected:
        return match(check, f"HTTP {status} {error_type} (upper case, as documented)")
    if error_type.lower() == expected.lower():
        return mismatch(
            check,
            f"HTTP {status} type {error_type!r}: the documented {expected!r} in another case "
            f"(Pleo's older pages use lowercase codes)",
        )
    return mismatch(check, f"HTTP {status} type {error_type!r}, documented {expected!r}")


# --- Subscriptions ----------------------------------------------------------------------------


def event_types_findings(
    subscriptions: list[Any], *, subscribe_with: str, accepted: Iterable[str]
) -> Iterator[Finding]:
    """``eventTypes`` of every subscription: an array of strings (the spec), and the created
    event spelled the way we subscribe (``subscribe_with``), not another accepted spelling."""
    accepted = set(accepted)
    if not subscriptions:
        yield skipped("subscriptions.event_types_shape", "this credential has no subscription")
        yield skipped("subscriptions.event_type_spelling", "this credential has no subscription")
        return
    shapes = []
    spellings: dict[str, list[str]] = {}
    relevant = 0
    for sub in subscriptions:
        sub_id = str(sub.get("id", "?")) if isinstance(sub, dict) else "?"
        types = sub.get("eventTypes") if isinstance(sub, dict) else None
        if isinstance(types, str):
            shapes.append(f"{sub_id}: a string ({types!r}), not an array")
            types = [types]
        elif not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            shapes.append(f"{sub_id}: neither an array of strings nor a string")
            continue
        created = [t for t in types if t in accepted or t == subscribe_with]
        if created:
            relevant += 1
        for spelling in created:
            if spelling != subscribe_with:
                spellings.setdefault(spelling, []).append(sub_id)
    n = len(subscriptions)
    if shapes:
        yield mismatch("subscriptions.event_types_shape", examples(shapes))
    else:
        yield match("subscriptions.event_types_shape", f"{plural(n, 'subscription')}: arrays")
    if spellings:
        parts = [f"{s!r} ({examples(ids)})" for s, ids in sorted(spellings.items())]
        yield mismatch(
            "subscriptions.event_type_spelling",
            f"Pleo shows the created event as {examples(parts)}; we subscribe with "
            f"{subscribe_with!r} and look for it when re-subscribing",
        )
    elif relevant:
        yield match(
            "subscriptions.event_type_spelling",
            f"{plural(relevant, 'subscription')} to the created event, spelled {subscribe_with!r}",
        )
    else:
        yield skipped(
            "subscriptions.event_type_spelling",
            f"none of the {plural(n, 'subscription')} is to the export-job created event",
        )


# --- Receipts ---------------------------------------------------------------------------------


def receipt_hosts_finding(check: str, export_items: Iterable[Any], *, api_base_url: str) -> Finding:
    """Every ``files[].url``: absolute, https (http only on loopback), on the API's host or
    another ``pleo.io`` host."""
    api_host = urlsplit(api_base_url).hostname or ""
    hosts: Counter[str] = Counter()
    problems = []
    for item in export_items:
        files = item.get("files") if isinstance(item, dict) else None
        for entry in files if isinstance(files, list) else []:
            url = entry.get("url") if isinstance(entry, dict) else None
            parts = urlsplit(url) if isinstance(url, str) else None
            host = (parts.hostname or "") if parts else ""
            if not host:
                problems.append("a files[].url that is not an absolute URL")
                continue
            hosts[host] += 1
            on_pleo = (
                host == api_host or host == RECEIPT_DOMAIN or host.endswith("." + RECEIPT_DOMAIN)
            )
            if not on_pleo:
                problems.append(f"{host} is neither the API's host nor a {RECEIPT_DOMAIN} host")
            elif parts.scheme != "https" and host not in LOOPBACK:
                problems.append(f"{parts.scheme}://{host} is not https")
    if problems:
        return mismatch(check, examples(sorted(set(problems))))
    if not hosts:
        return skipped(check, "no export item has a receipt file")
    seen = ", ".join(f"{h} ×{n}" for h, n in sorted(hosts.items()))
    return match(check, f"receipt files served from {seen}")
