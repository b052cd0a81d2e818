"""The journal as CSV (the admin's "Download CSV"): one row per journal line, columns

    Entry number, Date, Company, Job id, Accounting entry id, Reconciliation id, Account code,
    Account name, Debit, Credit, Currency, Description

Debit and credit are in major units with the currency's number of decimals (``1234.50``,
``1500`` for JPY, ``1.500`` for KWD; ``exports.money``), the empty cell on the other side.
Description is the entry's. A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return is prefixed with ``'`` so a spreadsheet shows it as text instead of running it as
a formula.

The file is UTF-8 with a byte-order mark, so Excel reads "Ø" and "€" right when it opens it. Two
formats (``CsvFormat``): ``csv``, comma-separated with a decimal point (the default), and
``csv-nordic``, semicolon-separated with a decimal comma, as Excel expects under Danish, Swedish,
Norwegian, Finnish and most other continental European regional settings.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from exports.money import format_minor

CSV_COLUMNS = (
    "Entry number",
    "Date",
    "Company",
    "Job id",
    "Accounting entry id",
    "Reconciliation id",
    "Account code",
    "Account name",
    "Debit",
    "Credit",
    "Currency",
    "Description",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"


class CsvFormat(StrEnum):
    STANDARD = "csv"
    NORDIC = "csv-nordic"


@dataclass(frozen=True)
class _Dialect:
    delimiter: str
    decimal_separator: str


DIALECTS = {
    CsvFormat.STANDARD: _Dialect(delimiter=",", decimal_separator="."),
    CsvFormat.NORDIC: _Dialect(delimiter=";", decimal_separator=","),
}


def csv_cell(value: Any) -> str:
    """A cell as text; one that a spreadsheet would read as a formula gets a leading ``'``."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def journal_csv_entries(*, entries):
    """The entries of a (filtered, scoped) queryset with what the rows read, in number order."""
    return entries.select_related("company", "export_job").prefetch_related("lines").order_by("pk")


def journal_csv_rows(
    *, entries: Iterable, csv_format: CsvFormat = CsvFormat.STANDARD
) -> Iterable[list[str]]:
    """The header, then one row per line of ``entries`` (see the module docstring)."""
    separator = DIALECTS[csv_format].decimal_separator

    def amount(value: int, currency: str) -> str:
        return format_minor(value, currency, decimal_separator=separator) if value else ""

    yield list(CSV_COLUMNS)
    for entry in entries:
        job_id = entry.export_job.pleo_job_id if entry.export_job_id else ""

        for line in entry.lines.all():
            row = [
                entry.number,
                entry.date.isoformat(),
                entry.company.name,
                job_id,
                entry.accounting_entry_id,
                entry.reconciliation_id,
                line.account_code,
                line.account_name,
                amount(line.debit, entry.currency),
                amount(line.credit, entry.currency),
                entry.currency,
                entry.description,
            ]
            yield [csv_cell(cell) for cell in row]


def journal_csv_write(
    *, entries: Iterable, out, csv_format: CsvFormat = CsvFormat.STANDARD
) -> None:
    """The rows into the text stream ``out`` (no byte-order mark: see :func:`journal_csv`)."""
    writer = csv.writer(out, delimiter=DIALECTS[csv_format].delimiter)
    for row in journal_csv_rows(entries=entries, csv_format=csv_format):
        writer.writerow(row)


def journal_csv(*, entries, csv_format: CsvFormat = CsvFormat.STANDARD) -> bytes:
    """The file to download: UTF-8 with a byte-order mark, in ``csv_format``."""
    out = io.StringIO()
    out.write(BOM)
    journal_csv_write(entries=journal_csv_entries(entries=entries), out=out, csv_format=csv_format)
    return out.getvalue().encode("utf-8")
