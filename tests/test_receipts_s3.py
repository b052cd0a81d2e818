"""The receipt archive on S3 (``RECEIPTS_STORAGE=s3``): django-storages against moto's local S3
server over real HTTP. Content-addressed there too: the same bytes are stored once."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from exports.receipts.files import receipts_storage
from exports.receipts.storage import receipt_store

pytestmark = pytest.mark.slow  # starts moto's server (about 2 s)

BUCKET = "pleo-receipts-test"


@pytest.fixture
def s3_archive(settings, monkeypatch):
    import boto3  # pinned in requirements.txt (RECEIPTS_STORAGE=s3): never skipped
    import moto.server as server_module  # pinned in requirements-dev.txt

    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-central-1",
    }.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=endpoint, region_name="eu-central-1").create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    settings.STORAGES = {
        **settings.STORAGES,
        "receipts": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": endpoint,
                "region_name": "eu-central-1",
                "access_key": "testing",
                "secret_key": "testing",
                "default_acl": None,
                "file_overwrite": True,
            },
        },
    }
    try:
        yield boto3.client("s3", endpoint_url=endpoint, region_name="eu-central-1")
    finally:
        server.stop()


def test_receipts_are_stored_once_per_content_on_s3(s3_archive, tmp_path: Path):
    content = b"%PDF-1.7\n" + b"receipt " * 10_000 + b"\n%%EOF\n"
    sha = hashlib.sha256(content).hexdigest()
    path = tmp_path / "r.pdf"
    path.write_bytes(content)
    assert receipts_storage().__class__.__name__ == "S3Storage"
    first = receipt_store(company_pk=3, sha256=sha, path=path)
    again = receipt_store(company_pk=3, sha256=sha, path=path)
    other = receipt_store(company_pk=4, sha256=sha, path=path)
    assert (first, again, other) == (f"3/{sha}", f"3/{sha}", f"4/{sha}")
    keys = [o["Key"] for o in s3_archive.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert sorted(keys) == [f"3/{sha}", f"4/{sha}"]
    with receipts_storage().open(first, "rb") as handle:
        assert handle.read() == content
