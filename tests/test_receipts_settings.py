"""RECEIPTS_STORAGE picks the archive's backend from the environment (read in a fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests import processes

pytestmark = pytest.mark.slow  # two interpreter starts

PRINT = (
    "import django, json; django.setup(); from django.conf import settings; "
    "print(json.dumps(settings.STORAGES['receipts']))"
)


def _settings(**env) -> subprocess.CompletedProcess:
    environ = processes.settings_env(without=("RECEIPTS_", "AWS_"), DEBUG="1", **env)
    return processes.run([sys.executable, "-c", PRINT], environ)


def test_s3_archive_from_the_environment_and_a_wrong_backend_refused():
    result = _settings(
        RECEIPTS_STORAGE="s3",
        AWS_STORAGE_BUCKET_NAME="receipts-bucket",
        AWS_S3_ENDPOINT_URL="https://s3.example.test",
    )
    assert result.returncode == 0, result.stderr
    storage = json.loads(result.stdout)
    assert storage["BACKEND"] == "storages.backends.s3.S3Storage"
    assert storage["OPTIONS"]["bucket_name"] == "receipts-bucket"
    assert storage["OPTIONS"]["endpoint_url"] == "https://s3.example.test"
    refused = _settings(RECEIPTS_STORAGE="ftp")
    assert refused.returncode != 0
    assert "RECEIPTS_STORAGE='ftp': use local or s3" in refused.stderr
