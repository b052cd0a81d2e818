"""A local, faithful Xero (Accounting API 2.0, Identity API, OAuth 2.0) over real HTTP.

For the product's tests and for trying the product by hand, like ``pleo_sandbox``. All state is
in memory; it imports nothing of the product and only the generic mechanics of ``pleo_sandbox``
(``httpbase``, ``routing``, ``controls``, ``messages``, ``clock``, ``faults``, ``requestlog``,
``ratelimit``, ``errors``). See README.md beside this file.

    from xero_sandbox.server import XeroSandboxServer

    server = XeroSandboxServer()
    server.start()
    client = server.state.add_oauth_client(redirect_uris=["http://localhost/callback"])
    tokens = server.state.oauth_issue_tokens(client)           # consent + code exchange
    tenant = server.state.tenants()[0]
    requests.get(f"{server.api_url}/Accounts", headers={
        "Authorization": f"Bearer {tokens['access_token']}", "xero-tenant-id": tenant.id})
"""
