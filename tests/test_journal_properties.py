"""Property tests of the journal's booking rules over generated export items (Hypothesis).

Generated items mix signs, currencies, zero and non-zero tax, missing accounts and totals that
do not match their lines. Properties:

* every entry that is booked balances (debits == credits) and books exactly Pleo's total on the
  contra account, and its expense and tax lines add up to that total with their signs;
* an item whose lines do not add up to Pleo's total is never booked (it fails instead);
* through the adapter and the database: what is stored balances against Pleo's total, and a
  failed item leaves no entry behind.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exports.adapters import BookingRequest
from exports.adapters.journal import JournalAdapter, Unbookable, plan_entry
from exports.models import JournalEntry
from tests.factories import make_company

CURRENCIES = ["DKK", "EUR", "SEK", "JPY"]
ACCOUNTS = [("4010", "Meals"), ("4020", "Travel"), ("4030", "Software")]
amounts = st.integers(min_value=-(10**9), max_value=10**9)


@st.composite
def export_items(draw):
    currency = draw(st.sampled_from(CURRENCIES))
    sign = draw(st.sampled_from([1, -1]))  # purchases and refunds
    lines = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        net = sign * abs(draw(amounts)) if draw(st.booleans()) else draw(amounts)
        tax = draw(st.one_of(st.just(0), amounts))
        account = draw(st.one_of(st.sampled_from(ACCOUNTS), st.none()))
        tax_account = draw(st.sampled_from(["6310", "6311", None]))
        money = {"inWalletCurrency": {"currency": currency, "value": net}}
        tax_money = {"inWalletCurrency": {"currency": currency, "value": tax}}
        lines.append(
            {
                "netAmount": money,
                "account": {"id": "a", "name": account[1], "code": account[0]} if account else None,
                "tax": {"code": "T", "amount": tax_money, "ingoingTaxAccount": tax_account},
            }
        )
    exact = sum(
        line["netAmount"]["inWalletCurrency"]["value"]
        + line["tax"]["amount"]["inWalletCurrency"]["value"]
        for line in lines
    )
    total = exact + draw(st.sampled_from([0, 0, 0, 1, -1, 100]))
    contra = draw(
        st.sampled_from([{"name": "Pleo", "code": "5820"}, {"identifier": "GL-5820"}, None])
    )
    return {
        "accountingEntryId": str(uuid.uuid4()),
        "accountingEntryLines": lines,
        "amount": {"inWalletCurrency": {"currency": currency, "value": total}},
        "contraAccount": contra,
        "date": "2025-05-20T00:00:00Z",
        "type": "refund" if sign < 0 else "card_purchase",
        "additionalInformation": {"reconciliationId": "B1"},
    }


def pleo_total(item) -> int:
    return item["amount"]["inWalletCurrency"]["value"]


def lines_total(item) -> int:
    return sum(
        line["netAmount"]["inWalletCurrency"]["value"]
        + line["tax"]["amount"]["inWalletCurrency"]["value"]
        for line in item["accountingEntryLines"]
    )


@settings(max_examples=400, deadline=None)
@given(export_items())
def test_every_planned_entry_balances_against_pleos_total(item):
    try:
        plan = plan_entry(item)
    except Unbookable as failed:
        assert not failed.result.booked and failed.result.failure_type and failed.result.message
        return
    total = pleo_total(item)
    assert plan.debits == plan.credits
    assert all(line.debit >= 0 and line.credit >= 0 for line in plan.lines)
    assert all(line.debit == 0 or line.credit == 0 for line in plan.lines)
    contra = [line for line in plan.lines if line.kind == "contra"]
    others = [line for line in plan.lines if line.kind != "contra"]
    assert sum(line.credit - line.debit for line in contra) == total
    assert sum(line.debit - line.credit for line in others) == total
    assert lines_total(item) == total


@settings(max_examples=400, deadline=None)
@given(export_items())
def test_an_item_whose_lines_do_not_add_up_is_never_booked(item):
    if lines_total(item) == pleo_total(item):
        return
    with pytest.raises(Unbookable) as failed:
        plan_entry(item)
    assert failed.value.result.failure_type in {
        "validation_failure",
        "missing_configuration",
        "account_unknown",
        "tax_code_unknown",
    }


@pytest.mark.django_db
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(item=export_items())
def test_stored_entries_balance_and_failed_items_leave_nothing(item):
    company = make_company(name="Props", pleo_company_id=uuid.uuid4())
    key = str(uuid.uuid4())
    request = BookingRequest(item=item, idempotency_key=key, pleo_job_id=uuid.uuid4())
    result = JournalAdapter(company=company).book(request)
    stored = JournalEntry.objects.filter(idempotency_key=key).first()
    if not result.booked:
        assert stored is None
        return
    lines = list(stored.lines.all())
    assert sum(line.debit for line in lines) == sum(line.credit for line in lines)
    assert stored.amount == pleo_total(item) == lines_total(item)
    assert sum(line.credit - line.debit for line in lines if line.kind == "contra") == stored.amount
