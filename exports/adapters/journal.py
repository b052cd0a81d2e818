"""The built-in ``journal`` adapter: a local double-entry journal (``JournalEntry`` and lines).

It needs no configuration and supports vendor-based bookkeeping (the vendor's code and name are
kept on the entry; an item without a vendor in such a job fails ``vendor_unknown``).

Booking rules. One export item becomes one journal entry. ``book_batch`` books a report chunk
(``max_batch``, 100 items): one query for the earlier entries, one insert of the entries, one of
their lines, in one transaction together with our records of the items (the lifecycle runs it
inside the run's transaction, see ``writes_locally``). Every amount is Pleo's
``inWalletCurrency`` value, in minor units:

* each of ``accountingEntryLines`` is debited to its ``account`` at its ``netAmount`` (lines on
  the same account are added up into one journal line);
* its tax, ``tax.amount``, is debited to the line's ``tax.ingoingTaxAccount`` (added up per tax
  account; a zero tax books nothing);
* the contra account, ``contraAccount`` (Pleo's card/bank account), is credited with the item's
  ``amount``.

Sign rule: a positive Pleo amount books as above; a negative one (refund, chargeback) books the
same lines with the sides swapped and positive amounts. In general each account's signed sum is
a debit when positive and a credit when negative, so an item mixing signs books correctly too.

The entry must balance exactly: the lines' net amounts plus their tax must equal Pleo's total,
all in the wallet currency. Otherwise the item fails (``validation_failure``) and nothing is
booked. Other item failures: a line without an account (code or identifier) is
``account_unknown``; no contra account is ``missing_configuration``; a non-zero tax without an
ingoing tax account is ``tax_code_unknown``. These refusals are ``precheck``'s (it reads and
writes nothing); ``book`` refuses the same items.

Kept from Pleo on the entry: ``reconciliationId``, ``_links``, ``type``, the booking ``date``,
the supplier's name and the note (as the description), the vendor and the amount in the
supplier's currency. Never copied anywhere (journal, CSV, logs): bank details
(``invoiceInformation.supplierBankAccount``), attendees, the user, files.

Idempotency: the key is unique on the entry, and ``book`` with a key already booked returns
that entry. An accounting entry already in this company's journal from an earlier job (one that
expired after we booked it, say, or a re-export) is not booked twice either: the earlier entry
is reported. ``lookup`` finds an entry by either (both columns are indexed).

Attachments: Pleo's own limits (``PLEO_ATTACHMENT_LIMITS``); the journal keeps no files yet.

The journal's CSV export is ``exports.selectors.journal_csv``; amounts are formatted by
``exports.money`` (the currency's number of decimals).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Case, Q, When
from django.urls import reverse

from exports import clock
from exports.adapters.base import (
    PLEO_ATTACHMENT_LIMITS,
    AccountingAdapter,
    BookingRequest,
    BookingResult,
    ItemCheck,
    LedgerDocument,
    LedgerSummary,
    ValidationResult,
)
from exports.choices import BookedSummarySource
from exports.money import format_minor
from exports.pleo import ItemFailureReasonType as ItemFailure

# Largest amount accepted, in minor units (far below BigIntegerField's limit even when summed).
MAX_MINOR = 10**15


class Unbookable(Exception):
    """The item cannot be booked as it is: ``check`` (``precheck``'s answer) or ``result``
    (``book``'s) is the failure to report."""

    def __init__(self, failure_type: ItemFailure, message: str) -> None:
        super().__init__(message)
        self.check = ItemCheck.failed(failure_type, message)
        self.result = self.check.as_result()


@dataclass(frozen=True)
class PlannedLine:
    kind: str  # JournalLine.Kind value
    account_code: str
    account_name: str
    debit: int
    credit: int
    description: str = ""


@dataclass(frozen=True)
class EntryPlan:
    """What one export item books as, before anything is written."""

    accounting_entry_id: uuid.UUID
    currency: str
    total: int
    date: date
    lines: tuple[PlannedLine, ...]
    description: str = ""
    pleo_type: str = ""
    reconciliation_id: str = ""
    supplier_currency: str = ""
    supplier_amount: int | None = None
    vendor_code: str = ""
    vendor_name: str = ""
    links: dict = field(default_factory=dict)

    @property
    def debits(self) -> int:
        return sum(line.debit for line in self.lines)

    @property
    def credits(self) -> int:
        return sum(line.credit for line in self.lines)


def _text(value: Any, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def required_mapping(value: Any, what: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise Unbookable(ItemFailure.VALIDATION_FAILURE, f"{what} is missing from Pleo's data.")
    return value


def minor_units(money: Any, what: str, currency: str) -> int:
    """A Money value in minor units, checked to be whole, in range and in ``currency``."""
    money = required_mapping(money, what)
    value = money.get("value")
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or abs(value) > MAX_MINOR:
        raise Unbookable(
            ItemFailure.VALIDATION_FAILURE,
            f"{what} is not a whole amount in minor units; the item was not booked.",
        )
    if money.get("currency") != currency:
        raise Unbookable(
            ItemFailure.VALIDATION_FAILURE,
            f"{what} is in {_text(money.get('currency'), 10) or 'no currency'}, not in the "
            f"wallet currency {currency}; the entry could not be booked in one currency.",
        )
    return int(value)


def _account(account: Any) -> tuple[str, str] | None:
    """(code, name) of a Pleo account (code, else identifier); None when it has neither."""
    if isinstance(account, str):
        return (account.strip()[:100], "") if account.strip() else None
    if not isinstance(account, Mapping):
        return None
    code = _text(account.get("code"), 100) or _text(account.get("identifier"), 100)
    return (code, _text(account.get("name"), 200)) if code else None


def booking_date(value: Any) -> date:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise Unbookable(
            ItemFailure.VALIDATION_FAILURE, "The item has no readable booking date."
        ) from None
    if parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).date()


def entry_description(item: Mapping) -> str:
    kind = _text(item.get("type"), 50).replace("_", " ").capitalize() or "Expense"
    supplier = item.get("supplier") if isinstance(item.get("supplier"), Mapping) else {}
    parts = [kind, _text(supplier.get("name"), 120), _text(item.get("note"), 150)]
    return " – ".join(part for part in parts if part)[:300]


def _sides(amount: int) -> tuple[int, int]:
    """(debit, credit) of a signed debit amount: negative goes to the credit side."""
    return (amount, 0) if amount >= 0 else (0, -amount)


def plan_entry(item: Mapping[str, Any], *, vendor_required: bool = False) -> EntryPlan:
    """Apply the booking rules of the module docstring. Raises :class:`Unbookable`."""
    item = required_mapping(item, "The export item")
    try:
        entry_id = uuid.UUID(str(item.get("accountingEntryId")))
    except ValueError:
        raise Unbookable(ItemFailure.VALIDATION_FAILURE, "The item has no accounting entry id.")
    amount = required_mapping(item.get("amount"), "The item's amount")
    wallet = required_mapping(
        amount.get("inWalletCurrency"), "The item's amount in the wallet currency"
    )
    currency = wallet.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise Unbookable(
            ItemFailure.VALIDATION_FAILURE, "The item's wallet currency is missing or unknown."
        )
    total = minor_units(wallet, "The item's amount", currency)

    contra = _account(item.get("contraAccount"))
    if contra is None:
        raise Unbookable(
            ItemFailure.MISSING_CONFIGURATION,
            f"No contra account is mapped for {currency} in Pleo, so the payment side cannot be "
            f"booked. Map a contra account for {currency} in Pleo's accounting settings and "
            f"export the item again.",
        )
    if vendor_required and not isinstance(item.get("vendor"), Mapping):
        raise Unbookable(
            ItemFailure.VENDOR_UNKNOWN,
            "This export uses vendor-based bookkeeping but the item has no vendor. Assign a "
            "vendor to it in Pleo and export it again.",
        )
    lines = item.get("accountingEntryLines")
    if not isinstance(lines, list) or not lines:
        raise Unbookable(
            ItemFailure.VALIDATION_FAILURE, "The item has no accounting lines; nothing to book."
        )

    expense: dict[str, list] = {}  # code -> [name, signed debit]
    tax: dict[str, list] = {}
    for number, line in enumerate(lines, start=1):
        line = required_mapping(line, f"Line {number}")
        net_pair = required_mapping(line.get("netAmount"), f"The net amount of line {number}")
        net = minor_units(
            net_pair.get("inWalletCurrency"), f"The net amount of line {number}", currency
        )
        account = _account(line.get("account"))
        if account is None:
            named = line.get("account") if isinstance(line.get("account"), Mapping) else {}
            name = _text(named.get("name"), 100)
            raise Unbookable(
                ItemFailure.ACCOUNT_UNKNOWN,
                (
                    f"The account '{name}' on line {number} has no account code."
                    if name
                    else f"Line {number} ({format_minor(net, currency)} {currency}) has no "
                    f"expense account."
                )
                + " Choose a bookable account for it in Pleo and export the item again.",
            )
        expense.setdefault(account[0], [account[1], 0])[1] += net
        line_tax = line.get("tax")
        if line_tax is None:
            continue
        line_tax = required_mapping(line_tax, f"The tax of line {number}")
        tax_pair = required_mapping(line_tax.get("amount"), f"The tax amount of line {number}")
        tax_amount = minor_units(
            tax_pair.get("inWalletCurrency"), f"The tax amount of line {number}", currency
        )
        if tax_amount == 0:
            continue
        tax_account = _account(line_tax.get("ingoingTaxAccount"))
        tax_code = _text(line_tax.get("code"), 50)
        if tax_account is None:
            raise Unbookable(
                ItemFailure.TAX_CODE_UNKNOWN,
                f"Line {number} has {format_minor(tax_amount, currency)} {currency} of tax"
                + (f" (tax code {tax_code})" if tax_code else "")
                + " but no input tax account is mapped for it. Map an input tax account for "
                "the tax code in Pleo's accounting settings and export the item again.",
            )
        name = f"Input tax {tax_code}".strip()
        tax.setdefault(tax_account[0], [tax_account[1] or name, 0])[1] += tax_amount

    booked = sum(value for _, value in expense.values()) + sum(v for _, v in tax.values())
    if booked != total:
        raise Unbookable(
            ItemFailure.VALIDATION_FAILURE,
            f"The lines add up to {format_minor(booked, currency)} {currency} (net plus tax) but "
            f"Pleo's total is {format_minor(total, currency)} {currency}; the entry would not "
            f"balance, so it was not booked. Check the item's lines in Pleo.",
        )
    planned: list[PlannedLine] = []
    for kind, accounts in (("expense", expense), ("tax", tax)):
        for code, (name, signed) in accounts.items():
            if signed:
                debit, credit = _sides(signed)
                planned.append(PlannedLine(kind, code, name, debit, credit, name))
    if total == 0 and not planned:
        raise Unbookable(
            ItemFailure.VALIDATION_FAILURE, "The item's amount is zero; there is nothing to book."
        )
    if total:
        debit, credit = _sides(-total)
        planned.append(PlannedLine("contra", contra[0], contra[1], debit, credit, contra[1]))
    plan_debits = sum(line.debit for line in planned)
    if plan_debits != sum(line.credit for line in planned):  # cannot happen once booked == total
        raise Unbookable(ItemFailure.VALIDATION_FAILURE, "The entry does not balance.")

    info = item.get("additionalInformation")
    info = info if isinstance(info, Mapping) else {}
    vendor = item.get("vendor") if isinstance(item.get("vendor"), Mapping) else {}
    supplier_pair = amount.get("inSupplierCurrency")
    supplier_currency, supplier_amount = "", None
    if isinstance(supplier_pair, Mapping):
        value, cur = supplier_pair.get("value"), supplier_pair.get("currency")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_MINOR:
            supplier_currency, supplier_amount = _text(cur, 3), value
    links = item.get("_links")
    return EntryPlan(
        accounting_entry_id=entry_id,
        currency=currency,
        total=total,
        date=booking_date(item.get("date")),
        lines=tuple(planned),
        description=entry_description(item),
        pleo_type=_text(item.get("type"), 50),
        reconciliation_id=_text(info.get("reconciliationId"), 100),
        supplier_currency=supplier_currency,
        supplier_amount=supplier_amount,
        vendor_code=_text(vendor.get("code"), 100),
        vendor_name=_text(vendor.get("name"), 200),
        links=dict(links) if isinstance(links, Mapping) else {},
    )


class JournalAdapter(AccountingAdapter):
    """Books into the local journal; see the module docstring."""

    name = "journal"
    label = "the local journal"
    supports_vendor_based_bookkeeping = True
    writes_locally = True
    attachment_limits = PLEO_ATTACHMENT_LIMITS
    max_batch = 100  # items per book_batch: Pleo's report chunk (PLEO_ITEMS_BATCH_SIZE, ≤ 100)
    # The entry as planned; it always was (an unrecorded source is the same).
    summary_source = BookedSummarySource.BOOKED_DOCUMENT
    unrecorded_summary_source = BookedSummarySource.BOOKED_DOCUMENT

    def validate(self, job) -> ValidationResult:
        result = super().validate(job)
        if not result.ok:
            return result
        return ValidationResult.passed("The local journal is ready (it needs no configuration).")

    def precheck(self, request: BookingRequest) -> ItemCheck:
        """The booking rules' refusals (module docstring); reads nothing, writes nothing."""
        try:
            self._plan(request)
        except Unbookable as exc:
            return exc.check
        return ItemCheck.passed()

    def book(self, request: BookingRequest) -> BookingResult:
        return self.book_batch([request])[0]

    def book_batch(self, requests) -> list[BookingResult]:
        """Book several items at once: one query for the earlier entries (by key, then by
        accounting entry id), then every new entry and every line in one insert each, all in
        one transaction (the caller's, when it has one: the lifecycle's, with our records)."""
        from exports.models import JournalEntry, JournalLine

        requests = list(requests)
        found = self._found_for(requests)
        results: list[BookingResult | None] = [None] * len(requests)
        waiting: dict[uuid.UUID, list[int]] = {}  # positions per new entry (the same expense
        new: dict[uuid.UUID, tuple[JournalEntry, EntryPlan]] = {}  # twice in a batch: once)
        for position, request in enumerate(requests):
            earlier = found(request)
            if earlier is not None:
                results[position] = self._result(earlier)
                continue
            try:
                plan = self._plan(request)
            except Unbookable as exc:
                results[position] = exc.result
                continue
            if plan.accounting_entry_id not in new:
                new[plan.accounting_entry_id] = (self._entry(plan, request), plan)
            waiting.setdefault(plan.accounting_entry_id, []).append(position)
        if new:
            with transaction.atomic():
                JournalEntry.objects.bulk_create(entry for entry, _ in new.values())
                JournalLine.objects.bulk_create(
                    line for entry, plan in new.values() for line in self._lines(entry, plan)
                )
        for entry_id, positions in waiting.items():
            for position in positions:
                results[position] = self._result(new[entry_id][0])
        return results

    def _found_for(self, requests):
        """One query: the entries booked earlier under the requests' keys or accounting entry
        ids (the earliest of an id); returns ``found(request) -> entry | None`` (``lookup``'s
        rule: the key first)."""
        from exports.models import JournalEntry

        keys = [r.idempotency_key for r in requests if r.idempotency_key]
        entry_ids = {_uuid_or_none(r.accounting_entry_id) for r in requests} - {None}
        wanted = Q(idempotency_key__in=keys) if keys else Q()
        if entry_ids:
            wanted |= Q(company=self.company, accounting_entry_id__in=list(entry_ids))
        by_key, by_entry = {}, {}
        if wanted:
            for entry in JournalEntry.objects.filter(wanted).order_by("-pk"):
                by_key[entry.idempotency_key] = entry
                if entry.company_id == self.company.pk:
                    by_entry[entry.accounting_entry_id] = entry  # the earliest last: it wins

        def found(request: BookingRequest):
            return by_key.get(request.idempotency_key) or by_entry.get(
                _uuid_or_none(request.accounting_entry_id)
            )

        return found

    def _entry(self, plan: EntryPlan, request: BookingRequest):
        from exports.models import JournalEntry

        return JournalEntry(
            company=self.company,
            export_job=self.job,
            accounting_entry_id=plan.accounting_entry_id,
            idempotency_key=request.idempotency_key,
            date=plan.date,
            currency=plan.currency,
            amount=plan.total,
            supplier_currency=plan.supplier_currency,
            supplier_amount=plan.supplier_amount,
            description=plan.description,
            pleo_type=plan.pleo_type,
            reconciliation_id=plan.reconciliation_id,
            vendor_code=plan.vendor_code,
            vendor_name=plan.vendor_name,
            pleo_links=plan.links,
            created_at=clock.now(),
        )

    @staticmethod
    def _lines(entry, plan: EntryPlan):
        from exports.models import JournalLine

        return (
            JournalLine(
                entry=entry,
                position=position,
                kind=line.kind,
                account_code=line.account_code,
                account_name=line.account_name,
                debit=line.debit,
                credit=line.credit,
                description=line.description[:300],
            )
            for position, line in enumerate(plan.lines, start=1)
        )

    def lookup(
        self,
        *,
        idempotency_key: str | None = None,
        accounting_entry_id: uuid.UUID | str | None = None,
    ) -> BookingResult | None:
        """By key (unique in the journal), else by Pleo's accounting entry id in this company's
        journal (its earliest entry). One query, whichever are given."""
        from exports.models import JournalEntry

        entry_id = _uuid_or_none(accounting_entry_id)
        wanted = Q()
        if idempotency_key:
            wanted |= Q(idempotency_key=idempotency_key)
        if entry_id is not None:
            wanted |= Q(company=self.company, accounting_entry_id=entry_id)
        if not wanted:
            return None
        by_key = Case(When(idempotency_key=idempotency_key or "", then=0), default=1)
        entry = JournalEntry.objects.filter(wanted).order_by(by_key, "pk").first()
        return self._result(entry) if entry is not None else None

    def lookup_entries(self, accounting_entry_ids) -> dict:
        """The earliest entry of each id in this company's journal: one query."""
        from exports.models import JournalEntry

        wanted = {}
        for entry_id in accounting_entry_ids:
            try:
                wanted[uuid.UUID(str(entry_id))] = entry_id
            except ValueError:
                continue  # not Pleo's id: no entry has it
        found = {}
        entries = JournalEntry.objects.filter(
            company=self.company, accounting_entry_id__in=list(wanted)
        ).order_by("-pk")  # the earliest last: it wins
        for entry in entries:
            found[wanted[entry.accounting_entry_id]] = self._result(entry)
        return found

    def booking_summary(self, request: BookingRequest) -> LedgerSummary | None:
        """What ``book`` writes: the entry's total and the accounts of its lines."""
        try:
            plan = self._plan(request)
        except Unbookable:
            return None
        return _summary(plan.total, plan.currency, (line.account_code for line in plan.lines))

    def read_back(self, external_ids) -> dict[str, LedgerDocument]:
        """The entries named ``JE-…`` with their lines now, and the other entries of the same
        expense in this company's journal (three queries)."""
        from exports.models import JournalEntry

        pks = {JournalEntry.pk_from_number(number): number for number in external_ids}
        pks.pop(None, None)
        entries = list(
            JournalEntry.objects.filter(company=self.company, pk__in=list(pks)).prefetch_related(
                "lines"
            )
        )
        twins: dict[uuid.UUID, list[str]] = {}
        for pk, entry_id in JournalEntry.objects.filter(
            company=self.company,
            accounting_entry_id__in=[entry.accounting_entry_id for entry in entries],
        ).values_list("pk", "accounting_entry_id"):
            twins.setdefault(entry_id, []).append(f"JE-{pk:06d}")
        found = {}
        for entry in entries:
            accounts = (line.account_code for line in entry.lines.all())
            found[entry.number] = LedgerDocument(
                external_id=entry.number,
                summary=_summary(entry.amount, entry.currency, accounts),
                duplicates=tuple(
                    number
                    for number in twins.get(entry.accounting_entry_id, [])
                    if number != entry.number
                ),
            )
        return found

    def _plan(self, request: BookingRequest) -> EntryPlan:
        vendor_required = bool(getattr(self.job, "vendor_based_bookkeeping", False))
        return plan_entry(request.item, vendor_required=vendor_required)

    @staticmethod
    def _result(entry) -> BookingResult:
        return BookingResult.success(
            external_id=entry.number,
            external_url=entry_admin_url(entry),
            exported_at=entry.created_at,
        )


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    """Pleo's accounting entry id as a UUID; None when absent or not one (no entry has it)."""
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _summary(amount: int, currency: str, accounts) -> LedgerSummary:
    return LedgerSummary(amount, currency, tuple(sorted(set(accounts))))


def entry_admin_url(entry) -> str:
    """The entry's admin page, absolute (``PUBLIC_BASE_URL``): the ``externalUrl`` Pleo shows."""
    path = reverse("admin:exports_journalentry_change", args=[entry.pk])
    return f"{settings.PUBLIC_BASE_URL}{path}"
