"""Saving into the receipt archive (the named storage ``STORAGES["receipts"]``, see
``exports.receipts.files``: a local folder by default, S3 or an S3-compatible store with
``RECEIPTS_STORAGE=s3``), content-addressed per company.

A file's name is ``<company pk>/<sha256>``: the same bytes exported twice for one company (in two
jobs, or twice in one) are stored once. Saving a name that exists is a no-op, so concurrent
downloads of the same file are harmless.
"""

from __future__ import annotations

from pathlib import Path

from django.core.files import File

from exports.receipts.files import receipts_storage


def storage_name(*, company_pk: object, sha256: str) -> str:
    """The content address of a file of a company."""
    return f"{company_pk}/{sha256}"


class _DownloadedFile(File):
    """A downloaded temporary file: a local archive moves it into place instead of copying it
    (Django's ``FileSystemStorage`` uses ``temporary_file_path``); others stream it."""

    def __init__(self, handle, name: str, path: Path) -> None:
        super().__init__(handle, name=name)
        self._path = path

    def temporary_file_path(self) -> str:
        return str(self._path)


def receipt_store(*, company_pk: object, sha256: str, path: Path) -> str:
    """Save the file at ``path`` under its content address (unless it is there) and return the
    name. ``path`` may be moved away. Never read into memory whole."""
    storage = receipts_storage()
    name = storage_name(company_pk=company_pk, sha256=sha256)
    if storage.exists(name):
        return name
    with open(path, "rb") as handle:
        saved = storage.save(name, _DownloadedFile(handle, name, path))
    if saved != name:
        # Another thread stored the same bytes first and the storage picked a free name for
        # ours: the content is the same, keep the one content address.
        storage.delete(saved)
    return name
