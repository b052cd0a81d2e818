"""The demo organisations a fresh sandbox holds: each with a chart of accounts, tax rates and a
tracking category, all with ids derived from the organisation's name (stable across runs)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

_NS = uuid.UUID("6f1c1b7e-3a63-4c5e-9a55-7b4f0d3c2a10")


@dataclass
class OrganisationSpec:
    """What sets an organisation apart (its tax rates: ``tax_set``, a key of ``TAX_SETS``); a
    :class:`~xero_sandbox.tenant.Tenant` is one, with its id and data."""

    name: str
    short_code: str
    country: str
    currency: str
    version: str
    timezone: str
    tax_set: str


DEMO_ORGANISATIONS = (
    OrganisationSpec("Demo Company (UK)", "!dmo1", "GB", "GBP", "UK", "GMTSTANDARDTIME", "uk"),
    OrganisationSpec(
        "Demo Company (NZ)", "!dmo2", "NZ", "NZD", "NZ", "NEWZEALANDSTANDARDTIME", "nz"
    ),
    OrganisationSpec(
        "Nordlys ApS", "!nrd1", "DK", "DKK", "GLOBAL", "ROMANCESTANDARDTIME", "global"
    ),
)

# (Code, Name, Type, Class, default TaxType (per tax set: "in"/"out"/"none"))
CHART = (
    ("090", "Business Bank Account", "BANK", "ASSET", "none"),
    ("200", "Sales", "REVENUE", "REVENUE", "out"),
    ("260", "Other Revenue", "OTHERINCOME", "REVENUE", "out"),
    ("310", "Cost of Goods Sold", "DIRECTCOSTS", "EXPENSE", "in"),
    ("400", "Advertising", "OVERHEADS", "EXPENSE", "in"),
    ("404", "Bank Fees", "OVERHEADS", "EXPENSE", "none"),
    ("420", "Entertainment", "OVERHEADS", "EXPENSE", "in"),
    ("429", "General Expenses", "OVERHEADS", "EXPENSE", "in"),
    ("433", "Insurance", "OVERHEADS", "EXPENSE", "none"),
    ("449", "Motor Vehicle Expenses", "OVERHEADS", "EXPENSE", "in"),
    ("453", "Office Expenses", "OVERHEADS", "EXPENSE", "in"),
    ("461", "Printing & Stationery", "OVERHEADS", "EXPENSE", "in"),
    ("489", "Telephone & Internet", "OVERHEADS", "EXPENSE", "in"),
    ("493", "Travel - National", "OVERHEADS", "EXPENSE", "in"),
    ("494", "Travel - International", "OVERHEADS", "EXPENSE", "none"),
    ("610", "Accounts Receivable", "CURRENT", "ASSET", "none"),
    ("800", "Accounts Payable", "CURRLIAB", "LIABILITY", "none"),
    ("814", "Employee Reimbursements", "CURRLIAB", "LIABILITY", "none"),
    ("820", "Sales Tax", "CURRLIAB", "LIABILITY", "none"),
    ("840", "Pleo Card Clearing", "CURRLIAB", "LIABILITY", "none"),
    ("960", "Retained Earnings", "EQUITY", "EQUITY", "none"),
)
SYSTEM_ACCOUNTS = {"610": "DEBTORS", "800": "CREDITORS", "820": "GST", "960": "RETAINEDEARNINGS"}

# (TaxType, Name, rate %, ReportTaxType, role "in"/"out"/"none")
TAX_SETS = {
    "uk": (
        ("INPUT2", "20% (VAT on Expenses)", 20.0, "INPUT", "in"),
        ("OUTPUT2", "20% (VAT on Income)", 20.0, "OUTPUT", "out"),
        ("RRINPUT", "5% (VAT on Expenses)", 5.0, "INPUT", ""),
        ("ZERORATEDINPUT", "Zero Rated Expenses", 0.0, "INPUT", ""),
        ("NONE", "No VAT", 0.0, "NONE", "none"),
    ),
    "nz": (
        ("INPUT2", "GST on Expenses", 15.0, "INPUT", "in"),
        ("OUTPUT2", "GST on Income", 15.0, "OUTPUT", "out"),
        ("NONE", "No GST", 0.0, "NONE", "none"),
    ),
    "global": (
        ("INPUT", "Tax on Purchases", 25.0, "INPUT", "in"),
        ("OUTPUT", "Tax on Sales", 25.0, "OUTPUT", "out"),
        ("NONE", "Tax Exempt", 0.0, "NONE", "none"),
    ),
}

TRACKING = (("Department", ("Sales", "Operations", "Management")),)


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(_NS, "/".join(parts)))


def tax_type_for(tax_set: str, role: str) -> str:
    return next(t[0] for t in TAX_SETS[tax_set] if t[4] == role)
