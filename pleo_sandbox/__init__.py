"""A local, faithful Pleo Export API (v3 + v1 webhook subscriptions) over real HTTP.

Like stripe-mock, for tests and for trying the product. All state is in memory; the sandbox has
no models, shares no settings with the product and never imports ``exports``. See README.md
beside this file for the full description; a summary of the control API follows.

Running it
----------
* In-process: ``server = SandboxServer(host="127.0.0.1", port=0, seed=None)``;
  ``server.start()`` returns the base URL (daemon thread); ``server.stop()``; ``server.url``;
  ``server.state`` is the Python control API (:class:`pleo_sandbox.state.SandboxState`).
* pytest: the ``pleo_sandbox`` fixture (``tests/fixtures/sandbox.py``) is a started server.
* Standalone: ``DEBUG=1 python manage.py pleo_sandbox [--port 8765] [--host 127.0.0.1]
  [--seed N]``.

Python control API (``server.state``)
-------------------------------------
Setup:
  ``reset(seed=None)``
  ``add_company(name=None, *, currency="DKK", company_id=None, organisation_id=None,
  contra_accounts_configured=True) -> Company``
  ``update_company(company_id, *, contra_accounts_configured)``
  ``add_organisation(name=None, *, company_ids=(), n_companies=0, currency="DKK")``
  ``add_api_key(company_id=None, *, company_ids=None, organisation_id=None, key=None,
  scopes=None, label=None) -> Credential``
  ``add_token(company_id=None, *, company_ids=None, organisation_id=None, token=None,
  scopes=None, expires_in=None, label=None) -> Credential``
  ``revoke(credential_id)``; ``companies()``, ``organisations()``, ``credentials()``
  ``seed_companies(n, *, jobs_per_company=2, items_per_job=3)``
  A ``Credential`` has ``.id``, ``.key``/``.token``/``.secret``, ``.identity`` (what logs show)
  and ``.auth_header()`` (``{"Authorization": "Basic …"}`` or ``"Bearer …"``).
OAuth 2.0 (``pleo_sandbox.oauth``; ``/oauth/authorize``, ``/oauth/token``):
  ``add_oauth_client(client_id=None, *, client_secret=None, redirect_uris, company_id=None,
  company_ids=None, organisation_id=None, scopes=None, name=None) -> OAuthClient``,
  ``oauth_clients()``, ``oauth_authorize(url=None, *, decision="approve", **params) -> str``
  (the redirect URL), ``oauth_issue_tokens(client_id, *, scopes=None) -> dict``,
  ``oauth_grants()``, ``oauth_refresh_token_status(refresh_token)``,
  ``oauth_revoke_grant(grant_id)``
Jobs:
  ``create_job(company_id, items=3, *, created_at=None, expires_in=None,
  vendor_based_bookkeeping=False, is_interactive=True, created_by=None,
  accounting_entry_ids=None, notify=True, conflict_check=False) -> dict`` (``items``: a count,
  a list of kinds or ``{kind: count}``; kinds ``normal``, ``foreign``, ``refund``,
  ``missing_account``, ``missing_contra``; bypasses ``conflict_on_create`` unless
  ``conflict_check``)
  ``get_job(job_id) -> {"job", "items" (with "kind"), "events", "itemUpdates"}``
  ``list_jobs(company_id=None)``, ``export_items(job_id)``,
  ``start_as_other_integration(job_id)``, ``set_job_status(job_id, status, **fields)``,
  ``send_job_created_webhook(job_id)``, ``subscriptions()``
Clock: ``now()``, ``advance_clock(seconds)``, ``set_clock_offset(seconds)``
Switches: ``switches`` (dict), ``set_switches(**values)``, ``reset_switches()``:
  ``list_order`` (chronological | reverse | shuffled), ``page_size_default`` (20),
  ``page_size_max`` (100), ``expiry_lag_seconds`` (0), ``default_expires_in`` (3600),
  ``started_on_in_progress`` ("422" | "202"), ``failed_on_pending`` ("422" | "202"),
  ``item_updates_on_pending`` ("422" | "accept"), ``conflict_on_create`` (True),
  ``stall_seconds`` (3.0), ``webhook_retry_schedule`` ([0.2, 0.5, 1, 2, 5]),
  ``webhook_timeout_seconds`` (2.0), ``oauth_access_token_lifetime`` (3600),
  ``oauth_refresh_token_lifetime`` (60 days), ``oauth_code_lifetime`` (60),
  ``rate_limit_per_minute`` (0: off), ``rate_limit_scope`` (credential | oauth_client |
  global), ``rate_limit_window_seconds`` (60) (see :mod:`pleo_sandbox.ratelimit`);
  ``expired_status`` (False), ``error_type_case`` (upper | lower), ``event_type_spelling``
  (v1.export-job.created | export-job.created | v1.export.job-created |
  v2.export-job.created), ``put_refreshes_last_updated`` (True), ``strict_final_event``
  (False) (see :mod:`pleo_sandbox.variants`)
Faults: ``add_fault(kind, method=None, path=None, *, path_regex=None, count=1,
  body_match=None, job_id=None, status=503, body=None, headers=None, retry_after=1,
  seconds=None, apply=False) -> Fault``, ``remove_fault(id)``, ``clear_faults()``; kinds
  ``status``, ``rate_limit``, ``latency``, ``stall``, ``reset``, ``apply_then_drop``,
  ``other_integration_starts`` (see :mod:`pleo_sandbox.faults`)
Logs: ``requests(method=None, path=None)``, ``clear_requests()``,
  ``request_log.wait_for(predicate, timeout)``, ``webhook_deliveries()``,
  ``wait_for_deliveries(count=1, timeout=5, **match)``, ``webhooks.wait_idle(timeout)``

HTTP control API (``/_sandbox/…``, JSON, camelCase or snake_case fields, no auth, not logged)
--------------------------------------------------------------------------------------------
``GET health`` · ``POST reset {seed?}`` · ``GET|POST companies`` · ``PATCH companies/{id}
{contraAccountsConfigured}`` · ``GET|POST organisations {name?, companyIds?, nCompanies?}`` ·
``POST api-keys {companyId|companyIds|organisationId, key?, scopes?, label?}`` ·
``POST tokens {…, token?, expiresIn?}`` · ``GET credentials`` ·
``POST credentials/{id}/revoke`` · ``GET|POST jobs {companyId, items?, createdAt?, expiresIn?,
vendorBasedBookkeeping?, isInteractive?, createdBy?, accountingEntryIds?, notify?,
conflictCheck?}`` ·
``GET jobs/{id}`` · ``GET jobs/{id}/export-items`` ·
``POST jobs/{id}/start-as-other-integration`` · ``POST jobs/{id}/webhook`` ·
``POST seed {companies, jobsPerCompany?, itemsPerJob?}`` · ``GET clock`` ·
``PUT clock {offsetSeconds}`` · ``POST clock/advance {seconds}`` ·
``GET|PATCH|PUT|DELETE switches`` · ``GET|POST|DELETE faults`` · ``DELETE faults/{id}`` ·
``GET|DELETE requests`` (``?method=&path=``) · ``GET|DELETE webhook-deliveries`` ·
``GET subscriptions`` · ``GET|POST oauth-clients`` · ``POST oauth/authorize {url?, decision?}``
· ``POST oauth/tokens {clientId}`` · ``GET oauth/grants`` · ``POST oauth/grants/{id}/revoke``
"""
