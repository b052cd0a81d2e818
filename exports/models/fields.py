"""Field factories the models share, ``exports.models``' own and those of the subpackages
(notifications, receipts, rejections, settlement, xero) alike.

Imports nothing of the project, so any models module may import it without a cycle. A factory
returns a plain Django field with the options written out here: the migrations see exactly the
field they would see if it were spelled in place.
"""

from __future__ import annotations

from django.db import models


def optional_foreign_key(to, *, on_delete, related_name: str, **options) -> models.ForeignKey:
    """A link a row may lack: NULL in the database and blank in forms, the two together."""
    return models.ForeignKey(
        to, on_delete=on_delete, null=True, blank=True, related_name=related_name, **options
    )
