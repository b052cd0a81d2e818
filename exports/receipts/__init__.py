"""Receipts: the files Pleo attaches to export items, fetched, verified and archived.

``models`` holds the archive's index (:class:`~exports.receipts.models.Receipt`), registered with
the ``exports`` app by ``exports.models``.
"""
