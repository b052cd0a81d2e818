"""Amounts as Pleo sends them and the journal stores them: whole minor units plus an ISO 4217
currency code. This is the one place that knows how many decimals a currency has.

``format_minor(195227, "DKK")`` → ``"1952.27"``; ``format_minor(1500, "JPY")`` → ``"1500"``;
``format_minor(1500, "KWD")`` → ``"1.500"``. Every amount a person reads (admin pages, captions,
CSV, messages) goes through here, so none is ever shown in minor units.
"""

from __future__ import annotations

from decimal import Decimal

# ISO 4217 currencies without two decimals; every other currency has two.
CURRENCY_EXPONENTS = {
    **dict.fromkeys(["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"], 0),
    **dict.fromkeys(["RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"], 0),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}
DEFAULT_EXPONENT = 2


def currency_exponent(currency: str) -> int:
    """How many decimals ``currency`` has (ISO 4217; 2 for any code not listed)."""
    return CURRENCY_EXPONENTS.get((currency or "").upper(), DEFAULT_EXPONENT)


def minor_to_major(value: int, currency: str) -> Decimal:
    """``195227, "DKK"`` → ``Decimal("1952.27")``: exact, never a float."""
    exponent = currency_exponent(currency)
    return Decimal(value).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))


def format_minor(value: int, currency: str, *, decimal_separator: str = ".") -> str:
    """Minor units as a decimal amount in major units: ``123450, "DKK"`` → ``1234.50``.

    ``decimal_separator=","`` writes ``1234,50`` (Nordic spreadsheets). No thousands separator.
    """
    text = f"{minor_to_major(value, currency):f}"
    return text.replace(".", decimal_separator) if decimal_separator != "." else text


def format_money(value: int, currency: str) -> str:
    """``195227, "DKK"`` → ``1952.27 DKK``."""
    return f"{format_minor(value, currency)} {currency}".strip()
