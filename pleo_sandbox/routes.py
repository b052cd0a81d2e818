"""Routing tables: Pleo's API endpoints and the ``/_sandbox/`` control endpoints."""

from __future__ import annotations

import uuid

from pleo_sandbox.controls import common_control_routes
from pleo_sandbox.errors import ApiError
from pleo_sandbox.files import file_fault_body
from pleo_sandbox.messages import Request, Response
from pleo_sandbox.routing import control_kwargs as _kwargs
from pleo_sandbox.routing import control_route as _c
from pleo_sandbox.routing import match_route as _match
from pleo_sandbox.routing import route as _route
from pleo_sandbox.routing import snake as _snake


def _path_uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ApiError(400, "BAD_REQUEST", f"'{value}' is not a valid {what} UUID.")


# ----------------------------------------------------------------------------------------------
# Pleo API
# ----------------------------------------------------------------------------------------------
def list_jobs(state, req: Request, cred) -> Response:
    return Response(200, state.api_list_jobs(cred, req.query))


def create_job(state, req: Request, cred) -> Response:
    return Response(201, state.api_create_job(cred, req.json()))


def get_job(state, req: Request, cred, job_id: str) -> Response:
    return Response(200, state.api_get_job(cred, _path_uuid(job_id, "job")))


def list_job_items(state, req: Request, cred, job_id: str) -> Response:
    return Response(200, state.api_list_job_items(cred, _path_uuid(job_id, "job"), req.query))


def update_job_items(state, req: Request, cred, job_id: str) -> Response:
    job_id = _path_uuid(job_id, "job")
    return Response(200, state.api_update_items(cred, job_id, req.json(), req.request_id))


def post_event(state, req: Request, cred) -> Response:
    state.api_post_event(cred, req.json(), req.request_id)
    return Response(202)


def list_export_items(state, req: Request, cred) -> Response:
    return Response(200, state.api_list_export_items(cred, req.query))


def list_subscriptions(state, req: Request, cred) -> Response:
    return Response(200, state.api_list_subscriptions(cred, req.query))


def create_subscription(state, req: Request, cred) -> Response:
    return Response(200, state.api_create_subscription(cred, req.json()))


def get_subscription(state, req: Request, cred, sub_id: str) -> Response:
    return Response(200, state.api_get_subscription(cred, sub_id))


def update_subscription(state, req: Request, cred, sub_id: str) -> Response:
    return Response(200, state.api_update_subscription(cred, sub_id, req.json()))


def delete_subscription(state, req: Request, cred, sub_id: str) -> Response:
    state.api_delete_subscription(cred, sub_id)
    return Response(204)


def subscription_secret(state, req: Request, cred, sub_id: str) -> Response:
    return Response(200, state.api_subscription_secret(cred, sub_id))


def subscription_activities(state, req: Request, cred, sub_id: str) -> Response:
    return Response(200, state.api_subscription_activities(cred, sub_id, req.query))


def download_file(state, req: Request, cred, file_id: str) -> Response:
    """A receipt behind a pre-signed-style URL: no auth, valid for 24 h on the sandbox clock."""
    return state.http_download(req, file_id)


def oauth_authorize_page(state, req: Request, cred) -> Response:
    return state.oauth.http_authorize_page(req)


def oauth_authorize_decision(state, req: Request, cred) -> Response:
    return state.oauth.http_authorize_decision(req)


def oauth_token(state, req: Request, cred) -> Response:
    return state.oauth.http_token(req)


API_ROUTES = [
    _route("GET", "/v3/export-jobs", list_jobs),
    _route("POST", "/v3/export-jobs", create_job),
    _route("GET", "/v3/export-jobs/{job_id}", get_job),
    _route("GET", "/v3/export-jobs/{job_id}/items", list_job_items),
    _route("PUT", "/v3/export-jobs/{job_id}/items", update_job_items),
    _route("POST", "/v3/export-job-events", post_event),
    _route("GET", "/v3/export-items", list_export_items),
    _route("GET", "/v1/subscriptions", list_subscriptions),
    _route("POST", "/v1/subscriptions", create_subscription),
    _route("GET", "/v1/subscriptions/{sub_id}", get_subscription),
    _route("PUT", "/v1/subscriptions/{sub_id}", update_subscription),
    _route("DELETE", "/v1/subscriptions/{sub_id}", delete_subscription),
    _route("GET", "/v1/subscriptions/{sub_id}/secret", subscription_secret),
    _route("GET", "/v1/subscriptions/{sub_id}/activities", subscription_activities),
    _route("GET", "/files/{file_id}", download_file, auth=False),
    # OAuth 2.0 (pleo_sandbox.oauth): Pleo serves these on its auth host.
    _route("GET", "/oauth/authorize", oauth_authorize_page, auth=False),
    _route("POST", "/oauth/authorize", oauth_authorize_decision, auth=False),
    _route("POST", "/oauth/token", oauth_token, auth=False),
]

OAUTH_TOKEN_PATH = "/oauth/token"


def is_oauth_path(path: str) -> bool:
    return path.rstrip("/") in ("/oauth/authorize", OAUTH_TOKEN_PATH)


def match_api(method: str, path: str):
    """``(route, path params, allowed methods)``; route None → 404 (no allowed) or 405."""
    return _match(API_ROUTES, method, path)


# ----------------------------------------------------------------------------------------------
# Control API (/_sandbox/...)
# ----------------------------------------------------------------------------------------------
def c_health(server, req: Request) -> Response:
    return Response(200, {"ok": True, "url": server.url, "seed": server.state.seed})


def c_reset(server, req: Request) -> Response:
    body = req.control_json()
    server.state.reset(seed=body.get("seed"))
    return Response(200, {"ok": True, "seed": server.state.seed})


def c_list_companies(server, req: Request) -> Response:
    return Response(200, {"data": [c.to_dict() for c in server.state.companies()]})


def c_add_company(server, req: Request) -> Response:
    kw = _kwargs(
        req.control_json(),
        ("name", "currency", "company_id", "organisation_id", "contra_accounts_configured"),
    )
    return Response(201, {"data": server.state.add_company(**kw).to_dict()})


def c_update_company(server, req: Request, company_id: str) -> Response:
    kw = _kwargs(req.control_json(), ("contra_accounts_configured",))
    company = server.state.update_company(company_id, **kw)
    return Response(200, {"data": company.to_dict()})


def c_list_orgs(server, req: Request) -> Response:
    return Response(200, {"data": [o.to_dict() for o in server.state.organisations()]})


def c_add_org(server, req: Request) -> Response:
    kw = _kwargs(req.control_json(), ("name", "company_ids", "n_companies", "currency"))
    return Response(201, {"data": server.state.add_organisation(**kw).to_dict()})


_CRED_FIELDS = ("company_id", "company_ids", "organisation_id", "scopes", "label")


def c_add_api_key(server, req: Request) -> Response:
    kw = _kwargs(req.control_json(), (*_CRED_FIELDS, "key"))
    return Response(201, {"data": server.state.add_api_key(**kw).to_dict()})


def c_add_token(server, req: Request) -> Response:
    kw = _kwargs(req.control_json(), (*_CRED_FIELDS, "token", "expires_in"))
    return Response(201, {"data": server.state.add_token(**kw).to_dict()})


def c_list_credentials(server, req: Request) -> Response:
    return Response(200, {"data": [c.to_dict() for c in server.state.credentials()]})


def c_revoke(server, req: Request, cred_id: str) -> Response:
    return Response(200, {"data": server.state.revoke(cred_id).to_dict()})


def c_create_job(server, req: Request) -> Response:
    body = dict(req.control_json())
    if "companyId" not in body and "company_id" not in body:
        raise ApiError(400, "SANDBOX_BAD_REQUEST", "'companyId' is required.")
    kw = _kwargs(
        body,
        (
            "company_id",
            "items",
            "created_at",
            "expires_in",
            "vendor_based_bookkeeping",
            "is_interactive",
            "created_by",
            "accounting_entry_ids",
            "notify",
            "conflict_check",
            "receipts",
        ),
    )
    company_id = kw.pop("company_id")
    return Response(201, {"data": server.state.create_job(company_id, **kw)})


def c_list_jobs(server, req: Request) -> Response:
    return Response(200, {"data": server.state.list_jobs(req.param("company_id"))})


def c_get_job(server, req: Request, job_id: str) -> Response:
    return Response(200, {"data": server.state.get_job(job_id)})


def c_job_export_items(server, req: Request, job_id: str) -> Response:
    return Response(200, {"data": server.state.export_items(job_id)})


def c_other_integration(server, req: Request, job_id: str) -> Response:
    return Response(200, {"started": server.state.start_as_other_integration(job_id)})


def c_job_webhook(server, req: Request, job_id: str) -> Response:
    return Response(200, {"deliveries": server.state.send_job_created_webhook(job_id)})


def c_seed(server, req: Request) -> Response:
    kw = _kwargs(req.control_json(), ("companies", "jobs_per_company", "items_per_job"))
    n = int(kw.pop("companies", 1))
    return Response(201, {"data": server.state.seed_companies(n, **kw)})


def c_get_file(server, req: Request, file_id: str) -> Response:
    return Response(200, {"data": server.state.file(file_id) or {}})


def c_set_file(server, req: Request, file_id: str) -> Response:
    kw = _kwargs(req.control_json(), ("type", "size"))
    return Response(200, {"data": server.state.set_file(file_id, **kw)})


def c_add_file_fault(server, req: Request, file_id: str) -> Response:
    kw = file_fault_body({_snake(k): v for k, v in req.control_json().items()})
    return Response(201, {"data": server.state.add_file_fault(file_id, **kw)})


def c_deliveries(server, req: Request) -> Response:
    return Response(200, {"data": server.state.webhook_deliveries()})


def c_clear_deliveries(server, req: Request) -> Response:
    server.state.webhooks.clear_log()
    return Response(204)


def c_subscriptions(server, req: Request) -> Response:
    return Response(200, {"data": server.state.subscriptions()})


_OAUTH_CLIENT_FIELDS = (
    "client_id",
    "client_secret",
    "redirect_uris",
    "company_id",
    "company_ids",
    "organisation_id",
    "scopes",
    "name",
)


def c_add_oauth_client(server, req: Request) -> Response:
    kw = _kwargs(req.control_json(), _OAUTH_CLIENT_FIELDS)
    return Response(201, {"data": server.state.add_oauth_client(**kw).to_dict()})


def c_list_oauth_clients(server, req: Request) -> Response:
    return Response(200, {"data": [c.to_dict() for c in server.state.oauth_clients()]})


def c_oauth_authorize(server, req: Request) -> Response:
    body = {_snake(k): v for k, v in req.control_json().items()}
    url = body.pop("url", None)
    decision = body.pop("decision", "approve")
    location = server.state.oauth_authorize(url, decision=decision, **body)
    return Response(200, {"location": location})


def c_oauth_issue_tokens(server, req: Request) -> Response:
    kw = _kwargs(req.control_json(), ("client_id", "scopes"))
    if "client_id" not in kw:
        raise ApiError(400, "SANDBOX_BAD_REQUEST", "'clientId' is required.")
    return Response(201, {"data": server.state.oauth_issue_tokens(kw.pop("client_id"), **kw)})


def c_oauth_grants(server, req: Request) -> Response:
    return Response(200, {"data": server.state.oauth_grants()})


def c_oauth_revoke_grant(server, req: Request, grant_id: str) -> Response:
    return Response(200, {"data": server.state.oauth_revoke_grant(grant_id)})


CONTROL_ROUTES = [
    _c("GET", "/health", c_health),
    _c("POST", "/reset", c_reset),
    _c("GET", "/companies", c_list_companies),
    _c("POST", "/companies", c_add_company),
    _c("PATCH", "/companies/{company_id}", c_update_company),
    _c("GET", "/organisations", c_list_orgs),
    _c("POST", "/organisations", c_add_org),
    _c("POST", "/api-keys", c_add_api_key),
    _c("POST", "/tokens", c_add_token),
    _c("GET", "/credentials", c_list_credentials),
    _c("POST", "/credentials/{cred_id}/revoke", c_revoke),
    _c("GET", "/jobs", c_list_jobs),
    _c("POST", "/jobs", c_create_job),
    _c("GET", "/jobs/{job_id}", c_get_job),
    _c("GET", "/jobs/{job_id}/export-items", c_job_export_items),
    _c("POST", "/jobs/{job_id}/start-as-other-integration", c_other_integration),
    _c("POST", "/jobs/{job_id}/webhook", c_job_webhook),
    _c("POST", "/seed", c_seed),
    _c("GET", "/files/{file_id}", c_get_file),
    _c("PATCH", "/files/{file_id}", c_set_file),
    _c("POST", "/files/{file_id}/faults", c_add_file_fault),
    *common_control_routes(),
    _c("GET", "/webhook-deliveries", c_deliveries),
    _c("DELETE", "/webhook-deliveries", c_clear_deliveries),
    _c("GET", "/subscriptions", c_subscriptions),
    _c("GET", "/oauth-clients", c_list_oauth_clients),
    _c("POST", "/oauth-clients", c_add_oauth_client),
    _c("POST", "/oauth/authorize", c_oauth_authorize),
    _c("POST", "/oauth/tokens", c_oauth_issue_tokens),
    _c("GET", "/oauth/grants", c_oauth_grants),
    _c("POST", "/oauth/grants/{grant_id}/revoke", c_oauth_revoke_grant),
]
