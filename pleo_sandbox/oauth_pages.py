"""The sandbox OAuth server's HTML: the consent page (Approve / Deny) and the error page.

Every value shown is HTML-escaped; both pages are sent with ``Cache-Control: no-store``.
"""

from __future__ import annotations

import html

from pleo_sandbox.messages import Response
from pleo_sandbox.oauth_store import OAuthClient

HTML_CONTENT_TYPE = "text/html; charset=utf-8"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
AUTHORIZE_PARAMS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)

_PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;color:#222}"
    "h1{font-size:1.4rem}code{background:#f3f3f3;padding:0 .2rem}"
    "button{font-size:1rem;padding:.5rem 1.2rem;margin-right:.6rem}"
    ".approve{background:#2e6b30;color:#fff;border:0}.deny{background:#eee;border:1px solid #999}"
)


def page(title: str, body: str, status: int = 200) -> Response:
    text = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_PAGE_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
    return Response(status, text.encode("utf-8"), dict(NO_STORE), HTML_CONTENT_TYPE)


def error_page(message: str) -> Response:
    return page(
        "Authorization error",
        f"<h1>Authorization error</h1><p class='error'>{html.escape(message)}</p>",
        400,
    )


def consent_page(
    client: OAuthClient,
    scopes: frozenset[str],
    params: dict[str, str],
    companies: list[str],
    organisation: str | None,
) -> Response:
    e = html.escape
    hidden = "".join(
        f"<input type='hidden' name='{e(k)}' value='{e(params[k])}'>"
        for k in AUTHORIZE_PARAMS
        if params.get(k) is not None
    )
    scope_items = "".join(f"<li><code>{e(s)}</code></li>" for s in sorted(scopes))
    where = e(organisation) if organisation else e(", ".join(companies))
    body = (
        "<h1>Pleo sandbox: authorise an integration</h1>"
        f"<p><strong>{e(client.name)}</strong> (client <code>{e(client.client_id)}</code>) "
        f"asks for access to <strong>{where}</strong> with these scopes:</p>"
        f"<ul class='scopes'>{scope_items}</ul>"
        f"<p>You will be sent back to <code>{e(params['redirect_uri'])}</code>.</p>"
        f"<form method='post' action='/oauth/authorize'>{hidden}"
        "<button class='approve' type='submit' name='decision' value='approve'>Approve</button>"
        "<button class='deny' type='submit' name='decision' value='deny'>Deny</button>"
        "</form>"
    )
    return page("Authorise an integration", body)
