"""Settings for benchmark 2: the product's settings with the bare baseline view added."""

from pleo_integration.settings import *  # noqa: F403

ROOT_URLCONF = "intake_urls"
