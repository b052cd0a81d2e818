"""Receipts as an operator meets them, in a real Chromium against the live web server: on a job's
page, open (download) an item's receipt and get the same bytes as archived; press "Download audit
pack" and get the job's ZIP (manifest, the receipt, the journal CSV) as the command writes it.

The job, its booked items and their receipts are written here (the fetching is not under test);
the web server reads the same test database and the same receipts directory. Slow (a web server
and a worker): ``--run-slow``.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tests.browser.pages import log_in, new_page, own_connections_closed
from tests.browser.test_admin_in_chromium import browser, live, shot  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.subprocess,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

PHOTO = b"\x89PNG\r\n\x1a\n a receipt photo"


def test_operator_opens_a_receipt_and_downloads_the_audit_pack_from_the_job_page(
    browser,  # noqa: F811
    live,  # noqa: F811
):
    with own_connections_closed():
        _walk(browser, live)


def _walk(chromium, base):
    from exports.models import Receipt
    from exports.receipts.pack import audit_pack_bytes
    from tests.factories import make_receipt
    from tests.test_receipts_pack import booked_job

    job = booked_job()
    record = job.item_records.order_by("pk").last()
    photo = make_receipt(record, PHOTO, position=1, content_type="image/png")

    page = new_page(chromium, viewport={"width": 1400, "height": 900}, accept_downloads=True)
    log_in(page, base)

    page.goto(f"{base}/admin/exports/exportjob/{job.pk}/change/")
    page.wait_for_selector("ul.receipts")
    assert photo.sha256 in page.inner_text("body")
    assert Receipt.objects.filter(export_job=job).count() == 4
    shot(page, "job-receipts")

    link = page.locator(f"a.receipt-download[href$='/receipt/{photo.pk}/download/']")
    with page.expect_download() as opened:
        link.click()
    download = opened.value
    assert download.suggested_filename == f"receipt-{photo.sha256[:16]}.png"
    assert Path(download.path()).read_bytes() == PHOTO

    with page.expect_download() as packed:
        page.get_by_role("link", name="Download audit pack").click()
    pack = packed.value
    assert pack.suggested_filename == f"audit-pack-{job.pleo_job_id}.zip"
    data = Path(pack.path()).read_bytes()
    assert data == audit_pack_bytes(job=job)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.read(f"receipts/{photo.sha256}.png") == PHOTO
        assert {"manifest.json", "journal.csv"} <= set(archive.namelist())
