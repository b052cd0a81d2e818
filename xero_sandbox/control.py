"""The HTTP control API (``/_sandbox/…``, JSON, camelCase or snake_case fields, no auth, not
logged): the same operations as the Python control API on ``server.state``."""

from __future__ import annotations

from pleo_sandbox.controls import common_control_routes
from pleo_sandbox.messages import Request, Response
from pleo_sandbox.routing import control_kwargs, snake
from pleo_sandbox.routing import control_route as _c


def _body(req: Request, allowed: tuple[str, ...]) -> dict:
    return control_kwargs(req.control_json(), allowed)


def c_health(server, req):
    return Response(200, {"ok": True, "url": server.url})


def c_reset(server, req):
    server.state.reset(seed=req.control_json().get("seed"))
    return Response(200, {"ok": True})


def _tenant_dict(tenant) -> dict:
    return {"tenantId": tenant.id, "name": tenant.name, "currency": tenant.currency}


def c_tenants(server, req):
    return Response(200, {"data": [_tenant_dict(t) for t in server.state.tenants()]})


def c_add_tenant(server, req):
    kw = _body(req, ("name", "currency", "country"))
    return Response(201, {"data": _tenant_dict(server.state.add_organisation(**kw))})


def c_clients(server, req):
    return Response(200, {"data": [c.to_dict() for c in server.state.oauth.clients.values()]})


def c_add_client(server, req):
    kw = _body(req, ("client_id", "client_secret", "redirect_uris", "name"))
    return Response(201, {"data": server.state.add_oauth_client(**kw).to_dict()})


def c_authorize(server, req):
    body = {snake(k): v for k, v in req.control_json().items()}
    return Response(200, {"location": server.state.oauth_authorize(**body)})


def c_issue_tokens(server, req):
    kw = _body(req, ("client_id", "tenant_ids", "scopes"))
    return Response(201, {"data": server.state.oauth_issue_tokens(kw.pop("client_id"), **kw)})


def c_connections(server, req):
    return Response(200, {"data": server.state.connections()})


def c_revoke_connection(server, req, connection_id):
    server.state.revoke_connection(connection_id)
    return Response(204)


def c_lock_dates(server, req, tenant_id):
    body = _body(req, ("period_lock_date", "end_of_year_lock_date"))
    org = server.state.set_lock_dates(
        tenant_id,
        period=body.get("period_lock_date", "keep"),
        end_of_year=body.get("end_of_year_lock_date", "keep"),
    )
    return Response(200, {"data": org})


def c_add_account(server, req, tenant_id):
    kw = _body(req, ("code", "name", "type", "account_class", "tax_type"))
    return Response(201, {"data": server.state.add_account(tenant_id, **kw)})


def c_account_status(server, req, tenant_id, code):
    status = _body(req, ("status",))["status"]
    return Response(200, {"data": server.state.set_account_status(tenant_id, code, status)})


def c_add_tax_rate(server, req, tenant_id):
    kw = _body(req, ("tax_type", "name", "rate", "report"))
    return Response(201, {"data": server.state.add_tax_rate(tenant_id, **kw)})


def c_tax_rate_status(server, req, tenant_id, tax_type):
    status = _body(req, ("status",))["status"]
    return Response(200, {"data": server.state.set_tax_rate_status(tenant_id, tax_type, status)})


def c_documents(server, req, tenant_id):
    kind = req.param("kind", "ManualJournals")
    return Response(200, {"data": server.state.documents(tenant_id, kind)})


def c_document_status(server, req, tenant_id, document_id):
    status = _body(req, ("status",))["status"]
    return Response(200, {"data": server.state.set_document_status(tenant_id, document_id, status)})


def c_document_edit(server, req, tenant_id, document_id):
    """``POST tenants/{id}/documents/{docId} {<the document's fields, as Xero names them>}``."""
    changes = req.control_json()  # Xero's field names, as they are
    return Response(200, {"data": server.state.edit_document(tenant_id, document_id, **changes)})


_T = "/tenants/{tenant_id}"
CONTROL_ROUTES = [
    _c("GET", "/health", c_health),
    _c("POST", "/reset", c_reset),
    _c("GET", "/tenants", c_tenants),
    _c("POST", "/tenants", c_add_tenant),
    _c("PUT", _T + "/lock-dates", c_lock_dates),
    _c("POST", _T + "/accounts", c_add_account),
    _c("PATCH", _T + "/accounts/{code}", c_account_status),
    _c("POST", _T + "/tax-rates", c_add_tax_rate),
    _c("PATCH", _T + "/tax-rates/{tax_type}", c_tax_rate_status),
    _c("GET", _T + "/documents", c_documents),
    _c("PATCH", _T + "/documents/{document_id}", c_document_status),
    _c("POST", _T + "/documents/{document_id}", c_document_edit),
    _c("GET", "/oauth-clients", c_clients),
    _c("POST", "/oauth-clients", c_add_client),
    _c("POST", "/oauth/authorize", c_authorize),
    _c("POST", "/oauth/tokens", c_issue_tokens),
    _c("GET", "/connections", c_connections),
    _c("DELETE", "/connections/{connection_id}", c_revoke_connection),
    *common_control_routes(fault_fields_left_out=("job_id",)),  # Xero has no Pleo jobs
]
