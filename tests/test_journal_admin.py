"""The journal as a person reads it. Amounts in major units everywhere (captions
too) with each currency's own decimals, debit and credit totals on an entry, Pleo's links as
links, a job filter that is a text box instead of a list of every job, and a CSV that Excel opens
right: UTF-8 with a byte-order mark, and ``?format=csv-nordic`` with semicolons and decimal
commas."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from django.urls import reverse

from exports import clock
from exports.models import JournalEntry, JournalLine
from exports.money import currency_exponent, format_minor, format_money
from tests.factories import make_company, make_job

pytestmark = pytest.mark.django_db

WEB_LINK = "https://app.pleo.io/export/job/entry"


def make_entry(company, *, job=None, currency="DKK", lines=((4060, 156182, 0), (5820, 0, 156182))):
    entry = JournalEntry.objects.create(
        company=company,
        export_job=job,
        accounting_entry_id=uuid.uuid4(),
        idempotency_key=uuid.uuid4().hex,
        date=clock.now().date(),
        currency=currency,
        amount=sum(debit for _, debit, _ in lines),
        description="Expense – Café Ørsted",
        pleo_links={
            "web": {"exportItem": WEB_LINK},
            "mobile": {"exportItem": "pleo://export/job/entry"},
            "api": {"exportItem": "javascript:alert(1)"},
        },
        created_at=clock.now(),
    )
    for position, (account, debit, credit) in enumerate(lines, start=1):
        JournalLine.objects.create(
            entry=entry,
            position=position,
            kind="contra" if credit else "expense",
            account_code=str(account),
            debit=debit,
            credit=credit,
        )
    return entry


@pytest.mark.parametrize(
    "value, currency, text",
    [
        (195227, "DKK", "1952.27"),
        (-500, "EUR", "-5.00"),
        (7, "SEK", "0.07"),
        (1500, "JPY", "1500"),
        (1500, "KWD", "1.500"),
        (1500, "jpy", "1500"),
        (1500, "XYZ", "15.00"),
    ],
)
def test_one_helper_knows_each_currencys_decimals(value, currency, text):
    assert format_minor(value, currency) == text
    assert format_money(value, currency) == f"{text} {currency}"
    assert currency_exponent(currency) == len(text.partition(".")[2])


def test_decimal_comma():
    assert format_minor(195227, "DKK", decimal_separator=",") == "1952,27"


def test_the_entry_page_shows_major_units_totals_and_pleo_links(admin_client):
    entry = make_entry(make_company(name="Nordlys"))
    url = reverse("admin:exports_journalentry_change", args=[entry.pk])
    html = admin_client.get(url).content.decode()
    # The lines' captions (each inline row's title) were "4060 D 156182": minor units.
    assert "156182" not in html
    assert "4060 debit 1561.82 DKK" in html and "5820 credit 1561.82 DKK" in html
    assert "Total debit" in html and "Total credit" in html
    assert html.count("1561.82 DKK") >= 4  # the two captions and the two totals
    assert f'<a href="{WEB_LINK}" rel="noopener noreferrer">{WEB_LINK}</a>' in html
    assert "pleo://export/job/entry" in html  # the app link as text
    assert 'href="javascript:' not in html


def test_captions_use_the_currencys_own_decimals(admin_client):
    company = make_company()
    yen = make_entry(company, currency="JPY", lines=((6000, 1500, 0), (5820, 0, 1500)))
    dinar = make_entry(company, currency="KWD", lines=((6000, 1500, 0), (5820, 0, 1500)))
    assert str(yen.lines.first()) == "6000 debit 1500 JPY"
    assert str(dinar.lines.last()) == "5820 credit 1.500 KWD"
    html = admin_client.get(reverse("admin:exports_journalentry_change", args=[dinar.pk]))
    assert "1.500 KWD" in html.content.decode()


def test_the_job_filter_is_a_text_box_not_a_list_of_every_job(admin_client):
    company = make_company()
    jobs = [make_job(company, status="completed") for _ in range(3)]
    for job in jobs:
        make_entry(company, job=job)
    url = reverse("admin:exports_journalentry_changelist")
    html = admin_client.get(url).content.decode()
    assert "export_job__id__exact" not in html  # no sidebar entry per job
    assert 'name="job"' in html and 'type="search"' in html

    def numbers(**params):
        response = admin_client.get(url, params)
        assert response.status_code == 200
        return {e.number for e in response.context["cl"].result_list}

    wanted = {e.number for e in JournalEntry.objects.filter(export_job=jobs[1])}
    full = str(jobs[1].pleo_job_id)
    assert numbers(job=full) == wanted
    assert numbers(job=full.upper()) == wanted
    assert numbers(job=full[:8] + "…") == wanted  # as the list's Job column shows it
    assert numbers(job="not a job id") == set()
    assert len(numbers()) == 3
    # The other filters are kept in the box's form.
    html = admin_client.get(url, {"currency__exact": "DKK"}).content.decode()
    assert '<input type="hidden" name="currency__exact" value="DKK">' in html


def test_csv_is_utf8_with_a_byte_order_mark(admin_client):
    make_entry(make_company(name="Ærø Café"))
    response = admin_client.get(reverse("admin:exports_journalentry_csv"))
    assert response.status_code == 200
    assert response.content.startswith(b"\xef\xbb\xbfEntry number,")
    text = response.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1][2] == "Ærø Café" and rows[1][8] == "1561.82"


def test_csv_nordic_has_semicolons_and_decimal_commas_and_keeps_the_filters(admin_client):
    alpha, beta = make_company(name="Alpha"), make_company(name="Beta")
    make_entry(alpha)
    make_entry(beta, currency="KWD", lines=((6000, 1500, 0), (5820, 0, 1500)))
    url = reverse("admin:exports_journalentry_csv")
    response = admin_client.get(url, {"format": "csv-nordic", "company__id__exact": alpha.pk})
    assert response.status_code == 200
    assert response["Content-Disposition"].endswith('-nordic.csv"')
    text = response.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0][:3] == ["Entry number", "Date", "Company"]
    assert len(rows) == 1 + 2 and {row[2] for row in rows[1:]} == {"Alpha"}
    assert [row[8:10] for row in rows[1:]] == [["1561,82", ""], ["", "1561,82"]]
    everything = admin_client.get(url, {"format": "csv-nordic"}).content.decode("utf-8-sig")
    assert "1,500;" in everything  # three decimals for KWD
    assert admin_client.get(url, {"format": "xlsx"}).status_code == 400


def test_the_list_offers_both_downloads_with_its_filters(admin_client):
    company = make_company()
    make_entry(company)
    url = reverse("admin:exports_journalentry_changelist")
    html = admin_client.get(url, {"company__id__exact": company.pk}).content.decode()
    csv_url = reverse("admin:exports_journalentry_csv")
    assert f'href="{csv_url}?company__id__exact={company.pk}"' in html
    assert f'href="{csv_url}?company__id__exact={company.pk}&amp;format=csv-nordic"' in html
