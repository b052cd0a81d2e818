"""``verify_xero_contract --company UUID [--json]``: check one company's Xero organisation against
Xero's published contract (docs/xero-openapi/) and our readings of it, with read-only calls.

Exit 0 when everything checked matched, 1 when anything did not (or the check could not run: not
connected, needs re-authorisation, Xero unreachable), 2 on a usage error or an unknown company
(as ``verify_pleo_contract``, whose printing it shares). What is called and checked:
``exports/services/xero_contract.py``.
"""

from exports.management.commands.verify_pleo_contract import Command as PleoContractCommand
from exports.models import Company
from exports.services.xero_contract import xero_contract_verify


class Command(PleoContractCommand):
    service = "Xero"
    help = (
        "Check what Xero answers for one company's connected organisation against Xero's "
        "OpenAPI files (docs/xero-openapi/) and the product's readings of them: /connections, "
        "Organisation (base currency), Accounts, TaxRates, TrackingCategories (statuses). "
        "Read-only: only GET requests, through the company's Xero connection. "
        "Exit 0: all matched; 1: something did not (or the check could not run); 2: usage error."
    )

    def verify(self, company: Company):
        return xero_contract_verify(company=company)
