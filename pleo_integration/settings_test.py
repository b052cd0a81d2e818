"""Settings for the test suite: the product's settings with DEBUG on unless the run says otherwise.

Tests run in a clean clone with no ``.env`` and no keys: DEBUG lets everything that does not
touch a secret run; tests that encrypt provide their own keys.
"""

import os

os.environ.setdefault("DEBUG", "1")

from pleo_integration.settings import *  # noqa: E402,F403
