"""Xero's ``where`` filter, the part the sandbox reads (README "What it serves").

Clauses: ``Field=="text"``, ``Field==Guid("id")``, ``Field==true``/``false``, ``!=`` of each,
and ``Field.Contains("text")``, ``.StartsWith("…")``, ``.EndsWith("…")`` (a quote inside the
text escaped as ``\\"``), with one level of nesting (``Contact.Name``). Clauses are joined by
``AND``/``&&`` and those groups by ``OR``/``||`` (``AND`` binds tighter, as in Xero's C#-like
filter). Comparisons ignore case. Parentheses, other operators and unquoted arguments are not
read: a 400, never silently ignored.
"""

from __future__ import annotations

import re

from xero_sandbox.errors import bad_request

_TEXT = r'"((?:[^"\\]|\\.)*)"'
_CLAUSE = re.compile(
    r"^\s*(\w+(?:\.\w+)?)\s*(?:"
    rf'(==|!=|=)\s*(?:{_TEXT}|Guid\("([^"]*)"\)|(true|false))'
    rf"|\.(Contains|StartsWith|EndsWith)\(\s*{_TEXT}\s*\)"
    r")\s*$",
    re.IGNORECASE,
)
_OR = re.compile(r"\s+OR\s+|\s*\|\|\s*", re.IGNORECASE)
_AND = re.compile(r"\s+AND\s+|\s*&&\s*", re.IGNORECASE)


def _split(expr: str, joiner: re.Pattern) -> list[str]:
    """``expr`` cut at ``joiner`` outside quoted text."""
    parts, start, at, quoted = [], 0, 0, False
    while at < len(expr):
        char = expr[at]
        if quoted and char == "\\":
            at += 2
            continue
        if char == '"':
            quoted = not quoted
        elif not quoted:
            found = joiner.match(expr, at)
            if found and found.end() > at:
                parts.append(expr[start:at])
                start = at = found.end()
                continue
        at += 1
    parts.append(expr[start:])
    return parts


def _unescaped(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _test(clause: str):
    found = _CLAUSE.match(clause)
    if found is None:
        raise bad_request(f"The sandbox cannot read the where clause '{clause.strip()}'.")
    name, op, text, guid, flag, method, argument = found.groups()

    def field(item: dict) -> str:
        for part in name.split("."):
            item = item.get(part) if isinstance(item, dict) else None
        return str(item).lower() if item is not None else ""

    if method:
        wanted = _unescaped(argument).lower()
        check = {"contains": str.__contains__, "startswith": str.startswith}.get(
            method.lower(), str.endswith
        )
        return lambda item: check(field(item), wanted)
    value = next(v for v in (text, guid, flag) if v is not None)
    value = _unescaped(value).lower() if text is not None else value.lower()
    if op == "!=":
        return lambda item: field(item) != value
    return lambda item: field(item) == value


def where(items: list[dict], expr: str | None) -> list[dict]:
    """The items ``expr`` selects, in their order (all of them when there is no ``expr``)."""
    if not expr or not expr.strip():
        return items
    groups = [[_test(clause) for clause in _split(group, _AND)] for group in _split(expr, _OR)]
    return [item for item in items if any(all(t(item) for t in group) for group in groups)]
