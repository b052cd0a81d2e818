"""What every browser walk does with a page: open it, log in as the operator, measure its width;
and closing the ORM connections the walk's own greenlet opened."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

PASSWORD = "browser-test-password-1"  # the operator's, as the ``live`` and ``web`` fixtures make


def new_page(browser, **kwargs):
    """A page (``kwargs`` as for Playwright's ``new_page``) that waits up to 20 s for anything."""
    page = browser.new_page(**kwargs)
    page.set_default_timeout(20_000)
    return page


def log_in(page, base: str) -> None:
    """As the operator, on the admin's index."""
    page.goto(f"{base}/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#export-status")


def page_width(page) -> int:
    """The page's width, or the widest table or inline on it if that is wider: Django's own
    narrow-screen style scrolls an inline sideways inside the page, which leaves the page narrow
    but the table as unreadable as before."""
    return page.evaluate(
        """() => Math.max(
            document.documentElement.scrollWidth,
            ...Array.from(document.querySelectorAll("#content table, #content .inline-group"))
                .map((el) => Math.max(el.scrollWidth, el.getBoundingClientRect().width))
        )"""
    )


@contextmanager
def own_connections_closed() -> Iterator[None]:
    """Around a walk's body: under Playwright's sync API the body runs in a greenlet of its own,
    so its ORM calls open their own connection; closed after, or the test database cannot be
    dropped."""
    from django.db import connections

    try:
        yield
    finally:
        connections.close_all()
