"""HTTP handling of the Xero sandbox: authenticate, pick the tenant, check scope and limits,
apply faults, run the route, log it (never a token, secret, code or attachment body) and
answer like Xero. The HTTP/1.1 plumbing and the shared fault kinds are
:mod:`pleo_sandbox.httpbase`."""

from __future__ import annotations

import logging
import uuid

from pleo_sandbox.errors import ApiError
from pleo_sandbox.httpbase import BaseRequestHandler
from pleo_sandbox.messages import Request, Response
from pleo_sandbox.requestlog import redact_fields
from pleo_sandbox.routing import match_route
from xero_sandbox import control, routes
from xero_sandbox.errors import XeroError, as_response, forbidden, problem

logger = logging.getLogger("xero_sandbox")

MAX_BODY_BYTES = 64 * 1024 * 1024  # above the largest attachment the switches allow by default
BROAD = {"manualjournals": "transactions", "invoices": "transactions"}


def _body_for_log(req: Request):
    form = req.form_body()
    if form is not None:
        return redact_fields(form)
    media = req.headers.get("content-type", "").split(";")[0].strip().lower()
    if req.raw_body and media != "application/json":
        return f"<{len(req.raw_body)} bytes>"
    return req.loose_body()


class XeroRequestHandler(BaseRequestHandler):
    server_version = "XeroSandbox/1.0"
    max_body_bytes = MAX_BODY_BYTES

    def protocol_error_body(self, code: int, message: str):
        return problem(code, "Bad Request" if code < 500 else "Error", message).body

    def internal_error_response(self) -> Response:
        return as_response(problem(500, "Internal Server Error", "Sandbox error."))

    def fault_status_body(self, status: int):
        return problem(
            status, "Service Unavailable" if status == 503 else "Error", "Injected fault."
        ).body

    def fault_rate_limit_body(self):
        return problem(429, "Too Many Requests", "Rate limit exceeded").body

    def body_error_response(self, status: int, message: str) -> Response:
        title = "Request Entity Too Large" if status == 413 else "Bad Request"
        return as_response(problem(status, title, message))

    control_routes = control.CONTROL_ROUTES

    def response_body_for_log(self, req: Request, response: Response):
        """JSON answers only, with tokens and secrets redacted."""
        return redact_fields(response.body) if isinstance(response.body, dict | list) else None

    def response_headers_for_log(self, response: Response) -> dict[str, str]:
        """The headers, a redirect's query (an authorization code) redacted."""
        out = dict(response.headers)
        if "Location" in out and "?" in out["Location"]:
            out["Location"] = out["Location"].split("?", 1)[0] + "?<redacted>"
        return out

    # -- main ------------------------------------------------------------------------------------
    def _handle(self, req: Request) -> None:
        state = self.server.state
        path, headers = req.path, req.headers
        entry = self.start_log_entry(
            req,
            body=_body_for_log(req),
            identity=state.oauth.identity(headers.get("authorization")),
            tenantId=headers.get("xero-tenant-id"),
        )
        xroute, params, allowed = match_route(routes.API_ROUTES, req.method, path)
        self._ctx = routes.Context()
        entered = None
        fault, outcome = None, "answered"
        response: Response | None
        try:
            if xroute is None:
                if allowed:
                    raise problem(
                        405,
                        "Method Not Allowed",
                        f"Use {', '.join(sorted(allowed))}.",
                        {"Allow": ", ".join(sorted(allowed))},
                    )
                raise problem(404, "Not Found", f"No endpoint {req.method} {path}.")
            entered = self._prepare(xroute, params, req)
            fault = state.faults.take(req.method, path, req.match_body())
            response, outcome = self.run_with_fault(xroute, params, req, fault)
        except XeroError as exc:
            response = as_response(exc)
        finally:
            if entered is not None:
                state.limits.leave(*entered)
        if response is not None and xroute is not None and xroute.kind == "accounting":
            token = self._ctx.token
            tenant_id = self._ctx.tenant.id if self._ctx.tenant else None
            for name, value in state.limits.headers(tenant_id, token and token.client_id).items():
                response.headers.setdefault(name, value)
            response.headers.setdefault("Xero-Correlation-Id", str(uuid.uuid4()))
        status = self.finish_and_answer(entry, req, response, fault=fault, outcome=outcome)
        logger.debug("xero sandbox %s %s -> %s (%s)", req.method, path, status, entry["identity"])

    def _prepare(self, xroute, params: dict, req: Request) -> tuple[str, str] | None:
        """Token, tenant, scope and limits; returns the in-flight slot taken (or None)."""
        state = self.server.state
        if xroute.kind == "oauth":
            return None
        with state.lock:
            token = state.oauth.bearer(req.headers.get("authorization"))
        self._ctx.token = token
        if xroute.kind == "identity":
            return None
        tenant_id = (req.headers.get("xero-tenant-id") or "").strip().lower()
        if not tenant_id:
            raise problem(
                403, "Forbidden", "AuthorizationUnsuccessful: the xero-tenant-id header is missing"
            )
        with state.lock:
            tenant = state.tenant_map().get(tenant_id)
            if tenant is None or not state.oauth.connected(token, tenant_id):
                raise forbidden("AuthorizationUnsuccessful: the tenant is not connected")
        self._ctx.tenant = tenant
        family = routes.scope_family(xroute, params)
        if family is not None:
            if state.switches["scope_model"] == "broad":
                family = BROAD.get(family, family)
            granted = set(token.scopes)
            ok = f"accounting.{family}" in granted or (
                req.method == "GET" and f"accounting.{family}.read" in granted
            )
            if not ok:
                raise forbidden(f"AuthorizationUnsuccessful: scope accounting.{family} is required")
        accept = req.headers.get("accept", "")
        if (
            state.switches["accept_json_required"]
            and "application/json" not in accept.lower()
            and xroute.fn is not routes.get_attachment
        ):
            raise problem(
                406,
                "Not Acceptable",
                "Send Accept: application/json (Xero answers XML otherwise; the sandbox only JSON)",
            )
        state.limits.enter(tenant.id, token.client_id)
        return tenant.id, token.client_id

    def _call(self, xroute, params: dict, req: Request) -> Response:
        state = self.server.state
        ctx = self._ctx
        try:
            with state.lock:
                key = req.headers.get("idempotency-key")
                if key and xroute.kind == "accounting" and req.method in ("PUT", "POST"):
                    fingerprint = f"{req.method} {req.path.lower()} {sorted(req.query.items())}\n"

                    def run():
                        answer = self._run_route(xroute, params, req)
                        return answer.status, answer.body, (answer.headers, answer.content_type)

                    status, body, (headers, content_type) = state.idempotent(
                        ctx.tenant,
                        ctx.token.client_id,
                        key,
                        fingerprint.encode() + req.raw_body,
                        run,
                    )
                    return Response(status, body, dict(headers), content_type)
                return self._run_route(xroute, params, req)
        except XeroError as exc:
            return as_response(exc)

    def _run_route(self, xroute, params: dict, req: Request) -> Response:
        try:
            return xroute.fn(self.server.state, req, self._ctx, **params)
        except XeroError as exc:
            return as_response(exc)
        except ApiError as exc:  # the body parser's 400/415
            return as_response(problem(exc.status, "Bad Request", exc.message))
