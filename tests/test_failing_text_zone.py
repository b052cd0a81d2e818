"""The failing sentence shows its times in the display zone (DISPLAY_TIME_ZONE), like every
other timestamp of the admin, not in a hard-coded UTC."""

from datetime import UTC, datetime

from exports.models import Company
from exports.selectors.failing import failing_text_for


def test_failing_times_follow_the_display_zone(settings):
    settings.DISPLAY_TIME_ZONE = "Europe/Copenhagen"
    company = Company(
        name="Acme",
        failing_since=datetime(2026, 1, 6, 12, 14, 5, tzinfo=UTC),
        attempts=5,
        next_retry_at=datetime(2026, 1, 6, 12, 23, 0, tzinfo=UTC),
        last_error="Pleo call failed: 429",
    )
    text = failing_text_for(obj=company)
    assert "failing since 2026-01-06 13:14:05 CET" in text
    assert "next retry at 2026-01-06 13:23:00 CET" in text
    assert "UTC" not in text
