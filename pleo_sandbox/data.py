"""Deterministic, realistic accounting data for export items (``GET /v3/export-items``).

Everything here is a pure function of a ``random.Random`` and its inputs, so the same seed gives
the same items. Amounts are integers in minor units and they add up exactly:

* per line, in both currencies: ``netAmount + tax.amount == lineAmount``;
* per item, in both currencies: ``sum(lineAmount) == amount``.

Item kinds (``ITEM_KINDS``):

``normal``           a purchase in the wallet currency;
``foreign``          a purchase in another currency, converted with a rate; the wallet-currency
                     total is the rounded converted total and the lines are allocated so that they
                     still add up to it;
``refund``           a refund (``type: refund``) with negative amounts;
``missing_account``  like ``normal`` but every line's ``account`` is null;
``missing_contra``   like ``normal`` but ``contraAccount`` is null.
"""

from __future__ import annotations

import random
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from pleo_sandbox.clock import iso

ITEM_KINDS = ("normal", "foreign", "refund", "missing_account", "missing_contra")

# Wallet currency → (country, [(tax code, rate)]).
WALLET_PROFILES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "DKK": ("DK", [("I25", "0.25"), ("I0", "0")]),
    "EUR": ("DE", [("VST19", "0.19"), ("VST7", "0.07")]),
    "GBP": ("GB", [("T1", "0.20"), ("T0", "0")]),
    "SEK": ("SE", [("MI25", "0.25"), ("MI12", "0.12")]),
    "NOK": ("NO", [("IN25", "0.25"), ("IN15", "0.15")]),
    "USD": ("US", [("EXEMPT", "0"), ("ST8", "0.08")]),
}
# Units of each currency per EUR (reference rates; a small per-item jitter is applied).
EUR_RATES: dict[str, Decimal] = {
    "EUR": Decimal("1"),
    "DKK": Decimal("7.4605"),
    "GBP": Decimal("0.8512"),
    "SEK": Decimal("11.2475"),
    "NOK": Decimal("11.6150"),
    "USD": Decimal("1.0842"),
}
MERCHANTS = [
    ("GOOGLE*ADS8693645259", "7311", "IE"),
    ("Amazon Web Services", "7372", "US"),
    ("Uber BV", "4121", "NL"),
    ("Scandic Hotels", "7011", "SE"),
    ("Pret A Manger", "5814", "GB"),
    ("IKEA", "5712", "SE"),
    ("Lufthansa", "4511", "DE"),
    ("WeWork", "6513", "GB"),
    ("Slack Technologies", "7372", "US"),
    ("DSB", "4112", "DK"),
    ("Joe & The Juice", "5814", "DK"),
    ("Figma Inc", "5734", "US"),
]
ACCOUNTS = [
    ("Meals and Entertainment", "4010"),
    ("Travel", "4020"),
    ("Software and Subscriptions", "4030"),
    ("Office Supplies", "4040"),
    ("Advertising", "4050"),
    ("Accommodation", "4060"),
]
TEAMS = [("Marketing", "MKT"), ("Engineering", "ENG"), ("Sales", "SLS"), ("Finance", None)]
FIRST_NAMES = ["Anna", "Jonas", "Freja", "Lars", "Sofia", "Mikkel", "Emma", "Oliver"]
LAST_NAMES = ["Hansen", "Jensen", "Nielsen", "Smith", "Andersson", "Berg", "Müller", "Rossi"]
NOTES = [
    "Client lunch",
    "Team offsite",
    "Monthly subscription",
    "Conference travel",
    None,
    None,
]


def new_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _money(currency: str, value: int) -> dict:
    return {"currency": currency, "value": value}


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def tax_of_gross(gross: int, rate: Decimal) -> int:
    """Tax included in a tax-inclusive ``gross`` amount (sign follows ``gross``)."""
    sign = -1 if gross < 0 else 1
    return sign * _round(Decimal(abs(gross)) * rate / (Decimal(1) + rate))


def convert_lines(supplier_lines: list[int], rate: Decimal) -> list[int]:
    """Convert line amounts with ``rate`` so that they add up to the converted total exactly.

    The wallet total is ``round(sum(lines) * rate)``; lines are allocated by largest remainder.
    """
    total = _round(Decimal(sum(supplier_lines)) * rate)
    exact = [Decimal(v) * rate for v in supplier_lines]
    floors = [int(e.to_integral_value(rounding="ROUND_FLOOR")) for e in exact]
    shortfall = total - sum(floors)
    by_remainder = sorted(range(len(exact)), key=lambda i: (exact[i] - floors[i], -i), reverse=True)
    for i in by_remainder[: max(shortfall, 0)]:
        floors[i] += 1
    return floors


@dataclass
class CompanyProfile:
    """A company's chart: accounts, tax codes, teams, users, tags and contra account."""

    currency: str
    country: str
    accounts: list[dict] = field(default_factory=list)
    tax_codes: list[dict] = field(default_factory=list)
    teams: list[dict] = field(default_factory=list)
    users: list[dict] = field(default_factory=list)
    tags: list[dict] = field(default_factory=list)
    contra_account: dict = field(default_factory=dict)

    @classmethod
    def generate(cls, rng: random.Random, currency: str) -> CompanyProfile:
        country, taxes = WALLET_PROFILES.get(currency, WALLET_PROFILES["EUR"])
        accounts = [
            {"id": new_uuid(rng), "name": name, "code": code, "identifier": f"GL-{code}"}
            for name, code in ACCOUNTS
        ]
        tax_codes = [
            {
                "id": new_uuid(rng),
                "code": code,
                "rate": rate,
                "ingoingTaxAccount": "6310",
                "outgoingTaxAccount": "6320",
            }
            for code, rate in taxes
        ]
        teams = [{"id": new_uuid(rng), "name": name, "code": code} for name, code in TEAMS]
        users = [
            {
                "id": new_uuid(rng),
                "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                "code": f"EMP{100 + i}",
            }
            for i in range(4)
        ]
        tags = [
            {"id": new_uuid(rng), "code": code, "groupCode": group}
            for group, code in [("PROJECT", "P-100"), ("PROJECT", "P-200"), ("DEPT", "D-OPS")]
        ]
        contra = {
            "id": new_uuid(rng),
            "name": f"Pleo {currency} Account",
            "code": "5820",
            "identifier": "GL-5820",
        }
        return cls(currency, country, accounts, tax_codes, teams, users, tags, contra)


def _line(
    rng: random.Random,
    profile: CompanyProfile,
    supplier_currency: str,
    supplier_gross: int,
    wallet_gross: int,
    *,
    with_account: bool,
) -> dict:
    tax_code = rng.choice(profile.tax_codes)
    rate = Decimal(tax_code["rate"])
    s_tax = tax_of_gross(supplier_gross, rate)
    w_tax = tax_of_gross(wallet_gross, rate)

    def pair(s_value: int, w_value: int) -> dict:
        return {
            "inSupplierCurrency": _money(supplier_currency, s_value),
            "inWalletCurrency": _money(profile.currency, w_value),
        }

    tags = [dict(rng.choice(profile.tags))] if rng.random() < 0.5 else None
    return {
        "accountingEntryLineId": new_uuid(rng),
        "lineAmount": pair(supplier_gross, wallet_gross),
        "netAmount": pair(supplier_gross - s_tax, wallet_gross - w_tax),
        "account": dict(rng.choice(profile.accounts)) if with_account else None,
        "tags": tags,
        "tax": {
            "id": tax_code["id"],
            "rate": float(rate),
            "type": "inclusive",
            "code": tax_code["code"],
            "amount": pair(s_tax, w_tax),
            "ingoingTaxAccount": tax_code["ingoingTaxAccount"],
            "outgoingTaxAccount": tax_code["outgoingTaxAccount"],
        },
    }


def generate_export_item(
    rng: random.Random,
    *,
    profile: CompanyProfile,
    company_id: str,
    accounting_entry_id: str,
    kind: str,
    job_created_at: datetime,
    vendor_based_bookkeeping: bool,
) -> dict:
    """One ExportItemV3 without ``_links`` and with ``files`` lacking their (per-fetch) URLs.

    ``files`` entries carry ``fileId`` instead of ``url``; the HTTP layer renders the URL.
    """
    if kind not in ITEM_KINDS:
        raise ValueError(f"unknown item kind {kind!r}; expected one of {ITEM_KINDS}")
    wallet = profile.currency
    if kind == "foreign":
        supplier_currency = rng.choice([c for c in EUR_RATES if c != wallet])
        jitter = Decimal(rng.randint(-100, 100)) / Decimal(10000)
        rate = (EUR_RATES[wallet] / EUR_RATES[supplier_currency] * (1 + jitter)).quantize(
            Decimal("0.000001")
        )
    else:
        supplier_currency = wallet
        rate = Decimal(1)
    n_lines = rng.choice([1, 1, 1, 2, 3])
    supplier_lines = [rng.randint(500, 250_000) for _ in range(n_lines)]
    wallet_lines = supplier_lines if kind != "foreign" else convert_lines(supplier_lines, rate)
    sign = -1 if kind == "refund" else 1
    supplier_lines = [sign * v for v in supplier_lines]
    wallet_lines = [sign * v for v in wallet_lines]
    lines = [
        _line(rng, profile, supplier_currency, s, w, with_account=kind != "missing_account")
        for s, w in zip(supplier_lines, wallet_lines, strict=True)
    ]
    merchant, mcc, merchant_country = rng.choice(MERCHANTS)
    booked = (job_created_at - timedelta(days=rng.randint(1, 30))).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    is_invoice = kind == "normal" and rng.random() < 0.25
    item_type = "refund" if kind == "refund" else ("invoice" if is_invoice else "card_purchase")
    user = dict(rng.choice(profile.users))
    invoice_information = None
    if is_invoice:
        invoice_information = {
            "invoiceDate": iso(booked - timedelta(days=3)),
            "invoiceNumber": f"INV-{rng.randint(10_000, 99_999)}",
            "status": rng.choice(["pending_approval", "paid"]),
            "dueDate": iso(booked + timedelta(days=30)),
            "paymentDate": None,
            "supplierBankAccount": {
                "bankName": "Danske Bank",
                "country": merchant_country,
                "accountNumber": str(rng.randint(10**9, 10**10 - 1)),
                "bankCode": str(rng.randint(1000, 9999)),
                "bic": "DABADKKK",
                "iban": f"DK{rng.randint(10, 99)}{rng.randint(10**13, 10**14 - 1)}",
            },
        }
        if invoice_information["status"] == "paid":
            invoice_information["paymentDate"] = iso(booked)
    files = [
        {
            "fileId": new_uuid(rng),
            "type": rng.choice(["application/pdf", "image/png"]),
            "size": rng.randint(2_000, 60_000),
        }
        for _ in range(rng.choice([0, 1, 1, 2]))
    ]
    vendor = None
    bookkeeping = {"method": "none"}
    if vendor_based_bookkeeping:
        vendor_code = f"V{rng.randint(1000, 9999)}"
        vendor = {
            "id": new_uuid(rng),
            "name": merchant,
            "defaultCurrency": supplier_currency,
            "code": vendor_code,
            "externalId": vendor_code,
            "country": merchant_country,
            "registrationNumber": str(rng.randint(10**7, 10**8 - 1)),
            "taxRegistrationNumber": f"{merchant_country}{rng.randint(10**7, 10**8 - 1)}",
        }
        bookkeeping = {"method": rng.choice(["journal", "payable"])}
    service_period = None
    if rng.random() < 0.3:
        start = booked.replace(day=1)
        service_period = {"from": iso(start), "to": iso(start + timedelta(days=27))}
    return {
        "accountingEntryId": accounting_entry_id,
        "accountingEntryLines": lines,
        "additionalInformation": {
            "reconciliationId": f"B{rng.randint(10**7, 10**8 - 1)}",
            "attendees": (
                [f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}" for _ in range(2)]
                if rng.random() < 0.2
                else None
            ),
            "invoiceInformation": invoice_information,
            "reconciledEntries": None,
        },
        "amount": {
            "inSupplierCurrency": _money(supplier_currency, sum(supplier_lines)),
            "inWalletCurrency": _money(wallet, sum(wallet_lines)),
        },
        "bookkeeping": bookkeeping,
        "companyId": company_id,
        "contraAccount": None if kind == "missing_contra" else dict(profile.contra_account),
        "date": iso(booked),
        "files": files,
        "note": rng.choice(NOTES),
        "servicePeriod": service_period,
        "supplier": {
            "name": merchant,
            "code": None,
            "account": None,
            "categoryCode": mcc,
            "country": merchant_country,
            "taxIdentifier": None,
        },
        "team": dict(rng.choice(profile.teams)) if rng.random() < 0.7 else None,
        "type": item_type,
        # Pleo's spec types subType as a (non-null) string but documents it as nullable; the
        # sandbox only produces expense types without a sub-type, so it is always null here.
        "subType": None,
        "user": user,
        "vendor": vendor,
    }


# Bytes of no known file type (a file fault's "wrong_content").
JUNK_TYPE = "application/x-sandbox-junk"
_CHUNK = 64 * 1024
_FILLER = b"sandbox-receipt-" * (_CHUNK // 16)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")


def _filler(n: int):
    while n > 0:
        piece = _FILLER[: min(n, _CHUNK)]
        n -= len(piece)
        yield piece


def _png_chunks(size: int):
    """A valid 1x1 PNG of exactly ``size`` bytes: padded with a private ancillary chunk."""
    head = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", (1).to_bytes(4, "big") * 2 + b"\x08\x00\x00\x00\x00")
        + _png_chunk(b"IDAT", zlib.compress(b"\x00\x00"))
    )
    tail = _png_chunk(b"IEND", b"")
    pad = size - len(head) - len(tail) - 12
    if pad < 0:
        yield (head + tail)[:size]
        return
    yield head + pad.to_bytes(4, "big") + b"pdPd"
    crc = zlib.crc32(b"pdPd")
    for piece in _filler(pad):
        crc = zlib.crc32(piece, crc)
        yield piece
    yield crc.to_bytes(4, "big") + tail


def file_chunks(file_id: str, mime_type: str, size: int):
    """Deterministic bytes of exactly ``size`` for an attachment, in chunks (a large file costs no
    memory): a PDF look-alike, a valid PNG, a JPEG look-alike, UTF-8 text or junk."""
    if mime_type == "image/png":
        yield from _png_chunks(size)
        return
    if mime_type == "application/pdf":
        head = f"%PDF-1.4\n% Pleo sandbox receipt {file_id}\n".encode()
        tail = b"\n%%EOF\n"
    elif mime_type == "text/plain":
        head, tail = f"Pleo sandbox receipt {file_id}\n".encode(), b"\n"
    elif mime_type == JUNK_TYPE:
        head, tail = b"\x00\x13\x37junk" + file_id.encode(), b"\x00"
    else:
        head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + file_id.encode()
        tail = b"\xff\xd9"
    if size <= len(head) + len(tail):
        yield (head + tail)[:size]
        return
    yield head
    yield from _filler(size - len(head) - len(tail))
    yield tail


def file_content(file_id: str, mime_type: str, size: int) -> bytes:
    """:func:`file_chunks` in one piece."""
    return b"".join(file_chunks(file_id, mime_type, size))
