"""The archived files themselves: the named storage, a file's extension and names, opening it.

Files live in Django's named storage ``STORAGES["receipts"]`` under ``Receipt.storage_name``.
They leave the archive only through the admin's download view (which checks the permission
``exports.download_receipt`` and the user's companies) and the audit pack; never through a
storage URL.

What a file is served as comes from ``Receipt.content_type`` (judged by content when it was
fetched), and only a type on :data:`EXTENSIONS` is sent as itself: anything else is sent as
``application/octet-stream`` with the extension ``bin``. A download's name is built here from the
hash and that extension, never from anything Pleo or a user wrote, so it needs no escaping.
"""

from __future__ import annotations

from functools import partial

from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import storages

STORAGE_ALIAS = "receipts"
OTHER_TYPE = "application/octet-stream"
# The types a receipt is sent as (what a bookkeeper's viewer opens), and their extensions.
EXTENSIONS = {
    "application/pdf": "pdf",
    "image/gif": "gif",
    "image/heic": "heic",
    "image/heif": "heif",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/tiff": "tiff",
    "image/webp": "webp",
}


def receipts_storage():
    return storages[STORAGE_ALIAS]


def receipt_adapter_file(receipt):
    """An archived receipt as an accounting adapter sees it (``ReceiptFile``: its bytes through
    ``open()``). The one place that names it: a later run attaching it again (the Xero adapter
    after an interrupted run) must send the same name, or Xero sees another file."""
    from exports.adapters.base import ReceiptFile
    from exports.receipts.sniff import kind_of

    extension = {"image/jpeg": "jpg", "text/plain": "txt"}.get(receipt.content_type)
    extension = extension or (kind_of(receipt.content_type) or "bin")
    return ReceiptFile(
        name=f"receipt-{receipt.accounting_entry_id}-{receipt.position + 1}.{extension}",
        content_type=receipt.content_type,
        size=receipt.size,
        sha256=receipt.sha256,
        opener=partial(receipts_storage().open, receipt.storage_name, "rb"),
    )


def receipt_served_type(receipt) -> str:
    content_type = (receipt.content_type or "").split(";")[0].strip().lower()
    return content_type if content_type in EXTENSIONS else OTHER_TYPE


def receipt_extension(receipt) -> str:
    return EXTENSIONS.get(receipt_served_type(receipt), "bin")


def receipt_pack_name(receipt) -> str:
    """Its path in an audit pack: ``receipts/<sha256>.<ext>``."""
    return f"receipts/{receipt.sha256}.{receipt_extension(receipt)}"


def receipt_download_name(receipt) -> str:
    """``receipt-<first 16 of the SHA-256>.<ext>``: hex digits and a known extension only."""
    sha = "".join(c for c in receipt.sha256.lower() if c in "0123456789abcdef")[:16]
    return f"receipt-{sha or 'file'}.{receipt_extension(receipt)}"


def receipt_open(receipt):
    """The stored file, open for reading in binary; None when it is not in the archive."""
    storage = receipts_storage()
    try:
        return storage.open(receipt.storage_name, "rb")
    except (FileNotFoundError, SuspiciousFileOperation):
        return None
