"""Receipts: the files Pleo attaches to export items, fetched, verified and archived.

``fetch`` downloads one file or many (never a credential or header of ours; https; bounded
retries; streamed to disk), ``sniff`` judges the type by content, ``storage`` is the archive (the
named storage ``STORAGES["receipts"]``, content-addressed per company), ``services`` holds
``receipts_fetch_for_items`` (what the export lifecycle calls before booking), and ``models`` the
archive's index (:class:`~exports.receipts.models.Receipt`), registered with the ``exports`` app
by ``exports.models``.
"""
