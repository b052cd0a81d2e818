"""The Accounting API (``/api.xro/2.0``), Identity API (``/connections``) and OAuth routes.

Each accounting route names its scope family (``settings``, ``contacts``, ``manualjournals``,
``invoices``, ``attachments``); the handler checks the token, the ``xero-tenant-id`` header, the
scope and the limits before a route runs, and gives it ``ctx`` (``ctx.tenant``, ``ctx.token``).
Paths match case-insensitively, as Xero's do.
"""

from __future__ import annotations

import copy
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

from pleo_sandbox.messages import Request, Response
from pleo_sandbox.routing import route
from xero_sandbox import documents
from xero_sandbox.contacts import contact_save, contacts_search
from xero_sandbox.dates import msdate, msdatetime, parse_date
from xero_sandbox.errors import JSON, as_response, bad_request, not_found, problem, validation
from xero_sandbox.where import where

API = "/api.xro/2.0"
DOC_KINDS = {
    "manualjournals": "ManualJournals",
    "invoices": "Invoices",
    "creditnotes": "CreditNotes",
}
DOC_FAMILY = {"ManualJournals": "manualjournals", "Invoices": "invoices", "CreditNotes": "invoices"}
# Which schema flag marks an element with errors (as xero_accounting.yaml declares them).
ERROR_FLAG = {
    "Invoices": "HasErrors",
    "CreditNotes": "HasErrors",
    "Contacts": "HasValidationErrors",
}


@dataclass(frozen=True)
class XRoute:
    method: str
    pattern: re.Pattern[str]
    fn: Any
    kind: str  # accounting | identity | oauth
    family: str | None = None


@dataclass
class Context:
    tenant: Any = None
    token: Any = None


def _r(method: str, template: str, fn, kind: str, family: str | None = None) -> XRoute:
    base = route(method, template, fn, flags=re.IGNORECASE)
    return XRoute(method, base.pattern, fn, kind, family)


def envelope(state, ctx: Context, **payload) -> dict:
    client = state.oauth.clients.get(ctx.token.client_id) if ctx.token else None
    return {
        "Id": str(uuid.uuid4()),
        "Status": "OK",
        "ProviderName": client.name if client else "Xero sandbox",
        "DateTimeUTC": msdatetime(state.now()),
        **payload,
    }


def paged(req: Request, items: list[dict], key: str) -> dict:
    page = req.param("page")
    if page is None:
        return {key: items}
    try:
        number = max(int(page), 1)
        size = min(max(int(req.param("pageSize") or 100), 1), 1000)
    except ValueError:
        raise bad_request("page and pageSize must be whole numbers.")
    chunk = items[(number - 1) * size : number * size]
    count = len(items)
    return {
        "pagination": {
            "page": number,
            "pageSize": size,
            "pageCount": (count + size - 1) // size,
            "itemCount": count,
        },
        key: chunk,
    }


def _ok(state, ctx: Context, **payload) -> Response:
    return Response(200, envelope(state, ctx, **payload), content_type=JSON)


# ---- settings ---------------------------------------------------------------------------------
def get_organisation(state, req, ctx):
    return _ok(state, ctx, Organisations=[ctx.tenant.organisation()])


def _settings(state, req, ctx, key: str, items: list[dict], id_field: str, given: str | None):
    """A settings list (``where`` applies), or the one whose ``id_field`` is ``given`` (404)."""
    if given is not None:
        items = [i for i in items if str(i[id_field]).lower() == given.lower()]
        if not items:
            raise not_found()
    return _ok(state, ctx, **{key: where(list(items), req.param("where"))})


def get_accounts(state, req, ctx, account_id: str | None = None):
    return _settings(state, req, ctx, "Accounts", ctx.tenant.accounts, "AccountID", account_id)


def get_tax_rates(state, req, ctx, tax_type: str | None = None):
    return _settings(state, req, ctx, "TaxRates", ctx.tenant.tax_rates, "TaxType", tax_type)


def get_tracking(state, req, ctx, category_id: str | None = None):
    items = ctx.tenant.tracking
    if req.param("includeArchived", "false").lower() != "true":
        items = [c for c in items if c["Status"] == "ACTIVE"]
    key, id_field = "TrackingCategories", "TrackingCategoryID"
    return _settings(state, req, ctx, key, items, id_field, category_id)


# ---- batches ----------------------------------------------------------------------------------
def _elements(req: Request, key: str) -> list:
    body = req.json()
    if isinstance(body, dict) and key in body:
        body = body[key]
    elif isinstance(body, dict):
        body = [body]
    if not isinstance(body, list) or not body:
        raise bad_request(f"The request body must hold {key}.")
    return body


def _echo(element: Any, kind: str, messages: list[str]) -> dict:
    echo = dict(element) if isinstance(element, dict) else {}
    for name in ("Date", "DueDate"):  # Xero answers with the dates it read, as /Date(…)/
        parsed = parse_date(echo.get(name))
        if parsed is not None:
            echo[name] = msdate(parsed)
    if kind in documents.KIND_TYPES and echo.get("Type") not in documents.KIND_TYPES[kind]:
        echo.pop("Type", None)  # a Type the document cannot have is not echoed
    echo["ValidationErrors"] = [{"Message": m} for m in messages]
    if messages and kind in ERROR_FLAG:
        echo[ERROR_FLAG[kind]] = True
    if kind == "ManualJournals" or kind in ERROR_FLAG and kind != "Contacts":
        echo["StatusAttributeString"] = "ERROR" if messages else "OK"
    return echo


def _batch(state, req: Request, ctx: Context, kind: str, save, item_id: str | None = None):
    """PUT/POST of a batch: all-or-nothing 400 unless ``summarizeErrors=false`` (then 200 with
    each element saved or carrying its ``ValidationErrors``)."""
    elements = _elements(req, kind)
    if item_id is not None:
        elements = elements[:1]
    summarize = (req.param("summarizeErrors") or "true").lower() != "false"
    tenant = ctx.tenant
    snapshot = copy.deepcopy(tenant.__dict__) if summarize else None
    results: list[tuple[Any, dict | None, list[str]]] = []
    store = tenant.contacts if kind == "Contacts" else tenant.documents[kind]
    for element in elements:
        given = (
            element.get(documents.KIND_ID.get(kind, "ContactID"))
            if isinstance(element, dict)
            else None
        )
        if req.method == "PUT" and given and item_id is None:
            results.append((element, None, [f"Use POST to update an existing {kind[:-1]}."]))
            continue
        existing = store.get(str(item_id or given or "").lower())
        saved, messages = save(element, item_id)
        # A refused update is echoed as the document with the changes asked for.
        shown = {**documents.public(existing), **element} if existing and messages else element
        results.append((shown, saved, messages))
    failed = any(messages for _, _, messages in results)
    if failed and summarize:
        tenant.__dict__.update(snapshot)
        return as_response(
            validation(
                "A validation exception occurred",
                [_echo(element, kind, messages) for element, _, messages in results],
            )
        )
    out = []
    for element, saved, messages in results:
        if messages:
            out.append(_echo(element, kind, messages))
        else:
            shown = documents.public(saved)
            if kind == "ManualJournals" or kind in ("Invoices", "CreditNotes"):
                shown["StatusAttributeString"] = "OK"
            out.append(shown)
    return _ok(state, ctx, **{kind: out})


def _save_doc(state, ctx, kind):
    def save(element, item_id):
        return documents.document_save(
            ctx.tenant,
            kind,
            element,
            now=state.now(),
            drafts_too=state.switches["lock_date_applies_to_drafts"],
            document_id=item_id,
        )

    return save


def _doc_kind(doc: str) -> str:
    kind = DOC_KINDS.get(doc.lower())
    if kind is None:
        raise not_found()
    return kind


def _document(ctx: Context, kind: str, doc_id: str) -> dict:
    doc = ctx.tenant.documents[kind].get(doc_id.lower())
    if doc is None:
        raise not_found()
    return doc


def list_documents(state, req, ctx, doc: str, doc_id: str | None = None):
    kind = _doc_kind(doc)
    if doc_id is not None:
        return _ok(state, ctx, **{kind: [documents.public(_document(ctx, kind, doc_id))]})
    items = [documents.public(d) for d in ctx.tenant.documents[kind].values()]
    statuses = req.param("Statuses")
    if statuses:
        items = [i for i in items if i["Status"] in statuses.upper().split(",")]
    ids = req.param("IDs")
    if ids:
        items = [i for i in items if i[documents.KIND_ID[kind]] in ids.lower().split(",")]
    return _ok(state, ctx, **paged(req, where(items, req.param("where")), kind))


def write_documents(state, req, ctx, doc: str, doc_id: str | None = None):
    kind = _doc_kind(doc)
    if doc_id is not None:
        _document(ctx, kind, doc_id)
    return _batch(state, req, ctx, kind, _save_doc(state, ctx, kind), doc_id and doc_id.lower())


# ---- contacts ---------------------------------------------------------------------------------
def list_contacts(state, req, ctx, contact_id: str | None = None):
    tenant = ctx.tenant
    if contact_id is not None:
        contact = tenant.contacts.get(contact_id.lower())
        if contact is None:
            raise not_found()
        return _ok(state, ctx, Contacts=[contact])
    items = contacts_search(
        tenant,
        search_term=req.param("searchTerm"),
        ids=[i for i in (req.param("IDs") or "").lower().split(",") if i],
        include_archived=(req.param("includeArchived") or "").lower() == "true",
    )
    return _ok(state, ctx, **paged(req, where(items, req.param("where")), "Contacts"))


def write_contacts(state, req, ctx, contact_id: str | None = None):
    if contact_id is not None and contact_id.lower() not in ctx.tenant.contacts:
        raise not_found()

    def save(element, item_id):
        return contact_save(ctx.tenant, element, now=state.now(), contact_id=item_id)

    return _batch(state, req, ctx, "Contacts", save, contact_id and contact_id.lower())


# ---- attachments and history ----------------------------------------------------------------
def _att_public(att: dict) -> dict:
    return {k: v for k, v in att.items() if not k.startswith("_")}


def list_attachments(state, req, ctx, doc: str, doc_id: str):
    kind = _doc_kind(doc)
    _document(ctx, kind, doc_id)
    atts = ctx.tenant.attachments.get(doc_id.lower(), [])
    return _ok(state, ctx, Attachments=[_att_public(a) for a in atts])


def get_attachment(state, req, ctx, doc: str, doc_id: str, name: str):
    kind = _doc_kind(doc)
    _document(ctx, kind, doc_id)
    for att in ctx.tenant.attachments.get(doc_id.lower(), []):
        if name in (att["AttachmentID"], att["FileName"]):
            return Response(200, att["_content"], content_type=att["MimeType"])
    raise not_found()


def upload_attachment(state, req, ctx, doc: str, doc_id: str, name: str):
    kind = _doc_kind(doc)
    target = _document(ctx, kind, doc_id)
    content = req.raw_body
    if not content:
        raise validation("The attachment has no content.")
    if len(content) > state.switches["attachment_max_bytes"]:
        raise problem(413, "Request Entity Too Large", "The attachment is too large.")
    atts = ctx.tenant.attachments.setdefault(doc_id.lower(), [])
    same = next((a for a in atts if a["FileName"].lower() == name.lower()), None)
    replace = same is not None and state.switches["attachment_same_filename"] == "replace"
    if not replace and len(atts) >= state.switches["attachment_max_count"]:
        raise validation(
            f"A document can have at most {state.switches['attachment_max_count']} attachments."
        )
    att = {
        "AttachmentID": same["AttachmentID"] if replace else str(uuid.uuid4()),
        "FileName": name,
        "Url": f"{state.base_url}{API}/{kind}/{doc_id.lower()}/Attachments/{quote(name)}",
        "MimeType": (req.headers.get("content-type") or "application/octet-stream").split(";")[0],
        "ContentLength": len(content),
        "_content": content,
    }
    if kind != "ManualJournals":
        att["IncludeOnline"] = (req.param("includeOnline") or "").lower() == "true"
    if replace:
        atts[atts.index(same)] = att
    else:
        atts.append(att)
    target["HasAttachments"] = True
    documents.history_add(
        ctx.tenant, doc_id.lower(), "Attached", f"Attached {name}", now=state.now()
    )
    return _ok(state, ctx, Attachments=[_att_public(att)])


def get_history(state, req, ctx, doc: str, doc_id: str):
    kind = _doc_kind(doc)
    _document(ctx, kind, doc_id)
    return _ok(state, ctx, HistoryRecords=ctx.tenant.history.get(doc_id.lower(), []))


def add_history(state, req, ctx, doc: str, doc_id: str):
    kind = _doc_kind(doc)
    _document(ctx, kind, doc_id)
    records = []
    for element in _elements(req, "HistoryRecords"):
        details = element.get("Details") if isinstance(element, dict) else None
        if not details:
            raise validation("A history note needs Details.")
        records.append(
            documents.history_add(ctx.tenant, doc_id.lower(), "Note", details, now=state.now())
        )
    return _ok(state, ctx, HistoryRecords=records)


# ---- identity and OAuth -----------------------------------------------------------------------
def get_connections(state, req, ctx):
    return Response(200, state.oauth.connections_of(ctx.token, req.param("authEventId")))


def delete_connection(state, req, ctx, connection_id: str):
    conn = state.oauth.connections.get(connection_id.lower())
    if conn is None or conn.client_id != ctx.token.client_id or conn.user_id != ctx.token.user_id:
        raise not_found()
    del state.oauth.connections[conn.id]
    return Response(204)


def _form(req: Request) -> dict:
    form = req.form_body()
    if form is None:
        form = dict(parse_qsl(req.raw_body.decode("utf-8", "replace"))) if req.raw_body else {}
    return form


def authorize_page(state, req, ctx):
    params = {k: v[0] for k, v in req.query.items()}
    page = state.oauth.authorize_page(params, state.tenants())
    return Response(200, page, content_type="text/html; charset=utf-8")


def authorize_decision(state, req, ctx):
    fields = parse_qsl(req.raw_body.decode("utf-8", "replace"), keep_blank_values=True)
    params = {k: v for k, v in fields if k != "tenant"}
    tenant_ids = [v for k, v in fields if k == "tenant"]
    answer = state.oauth.authorize_decision(params, tenant_ids, state.tenant_map())
    return Response(answer.status, None, answer.headers)


def token(state, req, ctx):
    answer = state.oauth.token(req.headers.get("authorization"), _form(req))
    return Response(200, answer, {"Cache-Control": "no-store"}, "application/json")


def revocation(state, req, ctx):
    form = _form(req)
    state.oauth._client_auth(req.headers.get("authorization"), form)
    state.oauth.revoke(form.get("token", ""))
    return Response(200)


def _acc(method, template, fn, family):
    return _r(method, API + template, fn, "accounting", family)


_DOC = "/{doc}/{doc_id}"
API_ROUTES = [
    _acc("GET", "/Organisation", get_organisation, "settings"),
    _acc("GET", "/Accounts", get_accounts, "settings"),
    _acc("GET", "/Accounts/{account_id}", get_accounts, "settings"),
    _acc("GET", "/TaxRates", get_tax_rates, "settings"),
    _acc("GET", "/TaxRates/{tax_type}", get_tax_rates, "settings"),
    _acc("GET", "/TrackingCategories", get_tracking, "settings"),
    _acc("GET", "/TrackingCategories/{category_id}", get_tracking, "settings"),
    _acc("GET", "/Contacts", list_contacts, "contacts"),
    _acc("PUT", "/Contacts", write_contacts, "contacts"),
    _acc("POST", "/Contacts", write_contacts, "contacts"),
    _acc("GET", "/Contacts/{contact_id}", list_contacts, "contacts"),
    _acc("POST", "/Contacts/{contact_id}", write_contacts, "contacts"),
    _acc("GET", _DOC + "/Attachments", list_attachments, "attachments"),
    _acc("GET", _DOC + "/Attachments/{name}", get_attachment, "attachments"),
    _acc("PUT", _DOC + "/Attachments/{name}", upload_attachment, "attachments"),
    _acc("POST", _DOC + "/Attachments/{name}", upload_attachment, "attachments"),
    _acc("GET", _DOC + "/History", get_history, "document"),
    _acc("PUT", _DOC + "/History", add_history, "document"),
    _acc("GET", "/{doc}", list_documents, "document"),
    _acc("PUT", "/{doc}", write_documents, "document"),
    _acc("POST", "/{doc}", write_documents, "document"),
    _acc("GET", _DOC, list_documents, "document"),
    _acc("POST", _DOC, write_documents, "document"),
    _r("GET", "/connections", get_connections, "identity"),
    _r("DELETE", "/connections/{connection_id}", delete_connection, "identity"),
    _r("GET", "/identity/connect/authorize", authorize_page, "oauth"),
    _r("POST", "/identity/connect/authorize", authorize_decision, "oauth"),
    _r("POST", "/connect/token", token, "oauth"),
    _r("POST", "/connect/revocation", revocation, "oauth"),
]


def scope_family(xroute: XRoute, params: dict) -> str | None:
    """The scope family a call needs (``document`` routes: the document kind's)."""
    if xroute.family != "document":
        return xroute.family
    kind = DOC_KINDS.get(params.get("doc", "").lower())
    return DOC_FAMILY.get(kind) if kind else None
