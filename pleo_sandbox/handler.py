"""HTTP handling of the Pleo sandbox: route requests, apply faults, log them, answer like Pleo.

Routing tables live in :mod:`pleo_sandbox.routes`; the HTTP/1.1 plumbing (keep-alive, exact
Content-Length, chunked request bodies, the shared fault kinds) is :mod:`pleo_sandbox.httpbase`.
"""

from __future__ import annotations

import logging

from pleo_sandbox import routes
from pleo_sandbox.errors import ApiError
from pleo_sandbox.httpbase import BaseRequestHandler
from pleo_sandbox.messages import Request, Response
from pleo_sandbox.requestlog import redact_fields

logger = logging.getLogger("pleo_sandbox")

MAX_BODY_BYTES = 5 * 1024 * 1024


class SandboxRequestHandler(BaseRequestHandler):
    server_version = "PleoSandbox/1.0"
    max_body_bytes = MAX_BODY_BYTES

    control_routes = routes.CONTROL_ROUTES

    # -- main ------------------------------------------------------------------------------------
    def _handle(self, req: Request) -> None:
        state = self.server.state
        path, headers = req.path, req.headers

        oauth = routes.is_oauth_path(path)
        form = req.form_body()
        entry = self.start_log_entry(
            req,
            # Form bodies (OAuth) are logged as a dict with secrets redacted.
            body=redact_fields(form) if form is not None else req.loose_body(),
            identity=(
                state.oauth.identity(req)
                if oauth
                else state.identity_for(headers.get("authorization"))
            ),
        )
        route, params, allowed = routes.match_api(req.method, path)
        fault = None
        response: Response | None
        outcome = "answered"
        if route is None:
            if allowed:
                response = Response(
                    405,
                    {
                        "type": "METHOD_NOT_ALLOWED",
                        "message": f"Method {req.method} is not allowed on {path}.",
                    },
                    {"Allow": ", ".join(sorted(allowed))},
                )
            else:
                response = Response(
                    404, {"type": "NOT_FOUND", "message": f"No endpoint {req.method} {path}."}
                )
        else:
            fault = state.faults.take(req.method, path, req.match_body())
            response, outcome = self.run_with_fault(route, params, req, fault)
        if response is not None and response.status >= 400 and not oauth:
            # The error_type_case switch; bodies a test gave a fault are sent as given.
            if fault is None or fault.body is None:
                response.body = state.error_body(response.body)

        status = self.finish_and_answer(entry, req, response, fault=fault, outcome=outcome)
        logger.debug(
            "pleo sandbox %s %s -> %s (%s)%s",
            req.method,
            path,
            status,
            entry["identity"],
            f" fault={fault.kind}" if fault else "",
        )

    def response_body_for_log(self, req: Request, response: Response):
        """OAuth answers (tokens) with their secrets redacted; the headers are logged as they
        are (never a secret: the sandbox sets no cookie or token in a header)."""
        body = super().response_body_for_log(req, response)
        return redact_fields(body) if routes.is_oauth_path(req.path) else body

    def _call(self, route, params: dict, req: Request) -> Response:
        state = self.server.state
        try:
            cred = state.authenticate(req.headers.get("authorization")) if route.auth else None
            if cred is not None:
                state.count_request(cred)  # the steady rate limit (429 past it)
            return route.fn(state, req, cred, **params)
        except ApiError as exc:
            return Response.error(exc)

    def custom_fault(self, route, params, req: Request, fault) -> tuple[Response | None, str]:
        if fault.kind == "other_integration_starts":
            self.server.state.other_integration_preempts(req.loose_body())
            return self._call(route, params, req), "answered"
        raise AssertionError(fault.kind)
