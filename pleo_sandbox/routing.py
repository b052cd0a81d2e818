"""Routing tables (generic, shared with ``xero_sandbox``): ``Route``, ``route`` (a path template
with ``{name}`` segments), ``match_route`` (route, params, allowed methods) and, for the control
API, ``control_route`` (a ``/_sandbox`` route, no auth), the camelCase/snake_case helpers ``snake``
and ``control_kwargs``, and ``run_control`` (one control request, errors mapped to the sandbox's
control answers)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pleo_sandbox.errors import ApiError
from pleo_sandbox.messages import Request, Response

_SEG = r"(?P<{}>[^/]+)"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    fn: Callable
    auth: bool = True


def route(method: str, template: str, fn: Callable, auth: bool = True, *, flags: int = 0) -> Route:
    regex = re.sub(r"\{(\w+)\}", lambda m: _SEG.format(m.group(1)), template)
    return Route(method, re.compile(regex + "/?", flags), fn, auth)


def control_route(method: str, template: str, fn: Callable) -> Route:
    """A control API route: ``template`` below ``/_sandbox``, no auth (tests and developers)."""
    return route(method, "/_sandbox" + template, fn, auth=False)


def match_route(routes: list[Route], method: str, path: str):
    allowed: set[str] = set()
    for candidate in routes:
        m = candidate.pattern.fullmatch(path)
        if m is None:
            continue
        if candidate.method == method:
            return candidate, m.groupdict(), allowed
        allowed.add(candidate.method)
    return None, {}, allowed


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def control_kwargs(body: dict, allowed: tuple[str, ...]) -> dict:
    out = {}
    for key, value in body.items():
        name = snake(key)
        if name not in allowed:
            raise ApiError(400, "SANDBOX_BAD_REQUEST", f"Unknown field '{key}'.")
        out[name] = value
    return out


def run_control(routes: list, server, req: Request) -> Response:
    """Run a control request: 404/405 for no route; a route's ``KeyError`` is 404 (unknown id),
    ``ValueError``/``TypeError`` 400, ``ApiError`` its own answer."""
    found, params, allowed = match_route(routes, req.method, req.path)
    if found is None:
        if allowed:
            return Response(
                405,
                {"type": "METHOD_NOT_ALLOWED", "message": f"Use {', '.join(sorted(allowed))}."},
                {"Allow": ", ".join(sorted(allowed))},
            )
        return Response(404, {"type": "SANDBOX_NOT_FOUND", "message": f"No control {req.path}."})
    try:
        return found.fn(server, req, **params)
    except ApiError as exc:
        return Response.error(exc)
    except KeyError as exc:
        return Response(404, {"type": "SANDBOX_NOT_FOUND", "message": f"Unknown id {exc}."})
    except (ValueError, TypeError) as exc:
        return Response(400, {"type": "SANDBOX_BAD_REQUEST", "message": str(exc)})
