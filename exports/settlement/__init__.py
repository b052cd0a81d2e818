"""Items booked by hand: an operator says a failed item is in the ledger after all.

``models`` holds :class:`~exports.settlement.models.ManualBooking` (registered with the
``exports`` app by ``exports.models``); the services are ``exports.services.settlement``
(mark, forget, and the lifecycle's before-booking check).
"""
