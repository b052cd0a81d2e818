"""One Xero organisation (a tenant): its settings (organisation, accounts, tax rates, tracking
categories), contacts, documents, attachments, history and remembered idempotency keys.

Plain data under the state's lock; the rules that change documents are in
:mod:`xero_sandbox.documents`. Everything is rendered in the shapes of ``xero_accounting.yaml``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from xero_sandbox import data
from xero_sandbox.dates import msdate, msdatetime

DOCUMENT_KINDS = ("ManualJournals", "Invoices", "CreditNotes")


@dataclass
class Tenant(data.OrganisationSpec):
    id: str
    created: datetime
    period_lock_date: date | None = None
    end_of_year_lock_date: date | None = None
    accounts: list[dict] = field(default_factory=list)
    tax_rates: list[dict] = field(default_factory=list)
    tracking: list[dict] = field(default_factory=list)
    contacts: dict[str, dict] = field(default_factory=dict)
    documents: dict[str, dict[str, dict]] = field(
        default_factory=lambda: {kind: {} for kind in DOCUMENT_KINDS}
    )
    attachments: dict[str, list[dict]] = field(default_factory=dict)
    history: dict[str, list[dict]] = field(default_factory=dict)
    # "client:key" -> (fingerprint, status, body, stored at, (headers, content type))
    idempotency: dict[str, tuple[str, int, Any, datetime, tuple]] = field(default_factory=dict)

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def demo(cls, spec: data.OrganisationSpec, now: datetime) -> Tenant:
        """An organisation as Xero's demo ones are: chart of accounts, tax rates, tracking."""
        name, tax_set = spec.name, spec.tax_set
        tenant = cls(id=data.stable_id("tenant", name), created=now, **vars(spec))
        for tax_type, tax_name, rate, report, _role in data.TAX_SETS[tax_set]:
            tenant.add_tax_rate(tax_type=tax_type, name=tax_name, rate=rate, report=report)
        for code, acc_name, acc_type, acc_class, role in data.CHART:
            tenant.add_account(
                code=code,
                name=acc_name,
                type=acc_type,
                account_class=acc_class,
                tax_type=data.tax_type_for(tax_set, role),
                now=now,
            )
        for cat_name, options in data.TRACKING:
            cat_id = data.stable_id(name, "tracking", cat_name)
            tenant.tracking.append(
                {
                    "TrackingCategoryID": cat_id,
                    "Name": cat_name,
                    "Status": "ACTIVE",
                    "Options": [
                        {
                            "TrackingOptionID": data.stable_id(name, "tracking", cat_name, opt),
                            "Name": opt,
                            "Status": "ACTIVE",
                        }
                        for opt in options
                    ],
                }
            )
        return tenant

    def add_account(
        self,
        *,
        code: str,
        name: str,
        type: str = "EXPENSE",  # noqa: A002 - Xero's field name
        account_class: str = "EXPENSE",
        tax_type: str = "NONE",
        now: datetime,
    ) -> dict:
        if self.account_by_code(code) is not None:
            raise ValueError(f"account code {code!r} exists")
        account = {
            "AccountID": data.stable_id(self.name, "account", code),
            "Code": code,
            "Name": name,
            "Status": "ACTIVE",
            "Type": type,
            "TaxType": tax_type,
            "Class": account_class,
            "EnablePaymentsToAccount": False,
            "ShowInExpenseClaims": account_class == "EXPENSE",
            "BankAccountType": "BANK" if type == "BANK" else "",
            "ReportingCode": account_class[:3],
            "ReportingCodeName": account_class.title(),
            "HasAttachments": False,
            "UpdatedDateUTC": msdatetime(now),
            "AddToWatchlist": False,
        }
        if code in data.SYSTEM_ACCOUNTS:
            account["SystemAccount"] = data.SYSTEM_ACCOUNTS[code]
        if type == "BANK":
            account["CurrencyCode"] = self.currency
            account["BankAccountNumber"] = "0000000000"
        self.accounts.append(account)
        return account

    def add_tax_rate(self, *, tax_type: str, name: str, rate: float, report: str = "INPUT") -> dict:
        if self.tax_rate(tax_type) is not None:
            raise ValueError(f"tax type {tax_type!r} exists")
        tax = {
            "Name": name,
            "TaxType": tax_type,
            "ReportTaxType": report,
            "CanApplyToAssets": True,
            "CanApplyToEquity": True,
            "CanApplyToExpenses": True,
            "CanApplyToLiabilities": True,
            "CanApplyToRevenue": True,
            "DisplayTaxRate": float(rate),
            "EffectiveRate": float(rate),
            "Status": "ACTIVE",
            "TaxComponents": [
                {"Name": name, "Rate": float(rate), "IsCompound": False, "IsNonRecoverable": False}
            ],
        }
        self.tax_rates.append(tax)
        return tax

    # -- lookups -------------------------------------------------------------------------------
    def account_by_code(self, code: str | None) -> dict | None:
        return next((a for a in self.accounts if a["Code"] == code), None)

    def account_by_id(self, account_id: str | None) -> dict | None:
        return next((a for a in self.accounts if a["AccountID"] == account_id), None)

    def tax_rate(self, tax_type: str | None) -> dict | None:
        return next((t for t in self.tax_rates if t["TaxType"] == tax_type), None)

    def lock_date(self) -> date | None:
        """The later of the two lock dates: postings on or before it are refused."""
        dates = [d for d in (self.period_lock_date, self.end_of_year_lock_date) if d]
        return max(dates) if dates else None

    def find_document(self, doc_id: str) -> tuple[str, dict] | None:
        for kind, docs in self.documents.items():
            if doc_id in docs:
                return kind, docs[doc_id]
        return None

    # -- shapes --------------------------------------------------------------------------------
    def organisation(self) -> dict:
        body = {
            "OrganisationID": self.id,
            "APIKey": "",
            "Name": self.name,
            "LegalName": self.name,
            "PaysTax": True,
            "Version": self.version,
            "OrganisationType": "COMPANY",
            "BaseCurrency": self.currency,
            "CountryCode": self.country,
            "IsDemoCompany": True,
            "OrganisationStatus": "ACTIVE",
            "FinancialYearEndDay": 31,
            "FinancialYearEndMonth": 12,
            "SalesTaxBasis": "ACCRUALS" if self.version == "UK" else "INVOICE",
            "SalesTaxPeriod": "QUARTERLY1",
            "DefaultSalesTax": "Tax Exclusive",
            "DefaultPurchasesTax": "Tax Exclusive",
            "PeriodLockDate": msdate(self.period_lock_date),
            "EndOfYearLockDate": msdate(self.end_of_year_lock_date),
            "CreatedDateUTC": msdatetime(self.created),
            "Timezone": self.timezone,
            "OrganisationEntityType": "COMPANY",
            "ShortCode": self.short_code,
            "Class": "DEMO",
            "Edition": "BUSINESS",
            "LineOfBusiness": "Sandbox",
            "Addresses": [],
            "Phones": [],
            "ExternalLinks": [],
            "PaymentTerms": {},
        }
        # Xero leaves a lock date out until one is set.
        return {key: value for key, value in body.items() if value is not None}


def new_id() -> str:
    return str(uuid.uuid4())
