"""Encrypted model attributes: :class:`EncryptedSecret` and the column it keeps its ciphertext in.

A leaf (imports only :mod:`exports.crypto` and Django), so that models defined outside
``exports/models.py`` (``exports.xero.models``) use it without importing ``exports.models`` back.
Importable from ``exports.models`` as before.
"""

from __future__ import annotations

from django.db import models

from exports import crypto


class EncryptedSecret:
    """A model attribute whose value is stored encrypted in ``<name>_ciphertext``.

    Reading decrypts (a wrong key raises); assigning encrypts. List pages, ``__str__`` and
    ``repr`` never touch it, so a page that shows no secret needs no key.
    """

    def __init__(self, verbose_name: str = ""):
        self.verbose_name = verbose_name

    def __set_name__(self, owner, name):
        self.name = name
        self.column = f"{name}_ciphertext"
        self.verbose_name = self.verbose_name or name.replace("_", " ").capitalize()

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        return crypto.decrypt(getattr(instance, self.column))

    def __set__(self, instance, value):
        if self.column not in {f.attname for f in instance._meta.concrete_fields}:
            raise AttributeError(f"{type(instance).__name__} has no column {self.column}")
        setattr(instance, self.column, crypto.encrypt(value or ""))


def secret_column():
    return models.TextField(blank=True, default="", editable=False)
