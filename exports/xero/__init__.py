"""The Xero client: everything that speaks HTTP to Xero, and no Django model.

``hosts`` (the allow-list of Xero hosts, :mod:`exports.pleo.hosts`' rule), ``errors``,
``resources`` (parsed answers), ``transport`` (the shared retry/budget/host rules of
:mod:`exports.pleo.transport` with Xero's headers and rate-limit reading), ``client`` (the
endpoints, ``XeroClient``), ``oauth`` (Xero's OAuth endpoints on :mod:`exports.pleo.oauth`).
``models`` is the exception: the Django models of a company's Xero connection, registered with
the ``exports`` app; no client module imports it (tests/test_layering.py).
"""
