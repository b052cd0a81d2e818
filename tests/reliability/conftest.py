"""The reliability scenarios drive the flow hard from one credential, in-process: the shared
request budget (``exports.services.budget``, tested in ``tests/test_budget.py``) would
defer runs on purpose and blur what each scenario measures, so it is off for in-process runs.
Product processes started by a scenario keep the default budget (one credential per company)."""

import pytest


@pytest.fixture(autouse=True)
def _no_request_budget(settings):
    settings.PLEO_RATE_LIMIT_PER_MINUTE = 0
