"""The Xero adapter (part 1): job validation and the per-item mapping check; no booking yet.

``selectable`` is False: no company can choose it in the admin, ``validate`` ends in the base
class's refusal ("cannot book exports yet") after its own checks, and ``book`` raises. What it
checks already:

``validate(job)``: the company's Xero connection is usable (connected, not "needs
re-authorisation", an organisation chosen) → else ``accounting_system_authentication_failure``;
the scopes Xero granted include every scope of ``XERO_SCOPES`` → else ``invalid_configuration``;
the tenant answers (``GET /Organisation``; a 401/403 after a refresh marks the connection for
re-authorisation) and its base currency is known → else ``accounting_system_authentication_failure``
/ ``accounting_system_unreachable`` / ``invalid_configuration``. Each message names what to fix.

``precheck(request)``: every Pleo code of the item (account, tax code, tags, contra account,
vendor) maps to an active Xero code (:mod:`exports.services.xero_mapping`) → else
``account_unknown`` / ``tax_code_unknown`` / ``tag_unknown`` / ``vendor_unknown`` with a message
naming the code and the mapping page. It also records the codes it saw (our own table of codes
seen, for the page of unmapped codes); nothing is written to Xero.
"""

from __future__ import annotations

from typing import Any, ClassVar

from exports.adapters.base import (
    AccountingAdapter,
    BookingRequest,
    BookingResult,
    ItemCheck,
    ValidationResult,
)
from exports.pleo import JobFailureReasonType

AUTH = JobFailureReasonType.ACCOUNTING_SYSTEM_AUTHENTICATION_FAILURE
CONFIG = JobFailureReasonType.INVALID_CONFIGURATION


class XeroAdapter(AccountingAdapter):
    name: ClassVar[str] = "xero"
    label: ClassVar[str] = "Xero"
    supports_vendor_based_bookkeeping: ClassVar[bool] = True
    selectable: ClassVar[bool] = False  # booking is the next issue

    def _connection(self):
        from exports.models import XeroConnection

        return XeroConnection.objects.filter(company=self.company).first()

    def check_connection(self) -> ValidationResult:
        """The Xero checks of ``validate`` (the module docstring), without the base class's."""
        from exports.services import xero_connections
        from exports.xero.errors import XeroAuthError, XeroError

        connection = self._connection()
        problem = xero_connections.unusable_reason(connection)
        if problem:
            return ValidationResult.failed(AUTH, problem)
        missing = sorted(xero_connections.required_scopes() - connection.scopes)
        if missing:
            return ValidationResult.failed(
                CONFIG,
                f"Xero did not grant the scopes {', '.join(missing)}: use 'Reconnect Xero' on the "
                f"company's admin page and allow them at Xero.",
            )
        try:
            with xero_connections.xero_client(connection=connection) as client:
                organisation = client.organisation()
        except xero_connections.XeroConnectionUnusable as exc:
            return ValidationResult.failed(AUTH, str(exc))
        except XeroAuthError as exc:
            return ValidationResult.failed(
                AUTH,
                f"Xero refused the connection to '{connection.tenant_name}' ({exc}). Use "
                f"'Reconnect Xero' on the company's admin page.",
            )
        except XeroError as exc:
            return ValidationResult.failed(
                JobFailureReasonType.ACCOUNTING_SYSTEM_UNREACHABLE,
                f"Xero organisation '{connection.tenant_name}' could not be reached: {exc}",
            )
        if not organisation.base_currency:
            return ValidationResult.failed(
                CONFIG,
                f"Xero organisation '{connection.tenant_name}' reports no base currency: set "
                f"it in Xero (Settings → Organisation details), then export again.",
            )
        return ValidationResult.passed()

    def validate(self, job: Any) -> ValidationResult:
        checked = self.check_connection()
        if not checked.ok:
            return checked
        return super().validate(job)

    def precheck(self, request: BookingRequest) -> ItemCheck:
        from exports.services import xero_mapping

        connection = self._connection()
        if connection is None:
            return ItemCheck.failed(
                "invalid_configuration", "The company is not connected to Xero."
            )
        failure = xero_mapping.xero_mapping_check_item(
            company=self.company, connection=connection, item=request.item
        )
        return ItemCheck.passed() if failure is None else ItemCheck.failed(*failure)

    def book(self, request: BookingRequest) -> BookingResult:
        raise NotImplementedError(
            "The Xero adapter cannot book yet (booking is the next issue); nothing was sent."
        )
