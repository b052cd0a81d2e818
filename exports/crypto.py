"""Encryption of secrets at rest with keys of their own (``CREDENTIALS_ENCRYPTION_KEYS``).

``MultiFernet``: the first key encrypts, every key decrypts, ``rotate`` re-encrypts under the first
key. A wrong key raises :class:`SecretDecryptionError`; ciphertext is never passed along as if it
were the secret. Nothing here logs a value.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SETTING = "CREDENTIALS_ENCRYPTION_KEYS"


class EncryptionKeysMissing(ImproperlyConfigured):
    """No usable encryption key is configured, so no secret can be stored or read."""


class EncryptionKeysInvalid(EncryptionKeysMissing):
    """A configured key is not a Fernet key. Settings refuse one at start; this is the same
    refusal for keys set another way (tests, a settings override). A subclass of
    :class:`EncryptionKeysMissing`: every caller that handles "no key" handles it alike."""


class SecretDecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


@lru_cache(maxsize=8)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.encode()))
        except (ValueError, TypeError):
            raise EncryptionKeysInvalid(
                f"{SETTING}: key number {position} is not a valid Fernet key "
                f"(32 url-safe base64-encoded bytes; generate one with "
                f"`python -c 'from cryptography.fernet import Fernet; "
                f"print(Fernet.generate_key().decode())'`)."
            ) from None
    return MultiFernet(fernets)


def _keys() -> MultiFernet:
    keys = tuple(settings.CREDENTIALS_ENCRYPTION_KEYS or ())
    if not keys:
        raise EncryptionKeysMissing(
            f"{SETTING} is not set: secrets cannot be encrypted or decrypted. "
            f"Set it in the environment or .env (the set-up command generates one)."
        )
    return _multi_fernet(keys)


def generate_key() -> str:
    return Fernet.generate_key().decode()


def _apply(use: Callable[[MultiFernet, bytes], bytes], text: str, refused: str = "") -> str:
    """``use(keys, text)`` as text; the empty string stays empty (no secret). A token no key
    decrypts raises :class:`SecretDecryptionError` with ``refused``."""
    if text == "":
        return ""
    try:
        return use(_keys(), text.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError(refused) from None


def encrypt(plaintext: str) -> str:
    """Encrypt ``plaintext`` under the first key. The empty string stays empty (no secret)."""
    return _apply(MultiFernet.encrypt, plaintext)


def decrypt(ciphertext: str) -> str:
    return _apply(
        MultiFernet.decrypt,
        ciphertext,
        f"A stored secret cannot be decrypted with any key in {SETTING}: the key that "
        f"encrypted it is missing (keep old keys listed after the new one while rotating).",
    )


def rotate(ciphertext: str) -> str:
    """Re-encrypt ``ciphertext`` under the first key (it must decrypt under one of them)."""
    return _apply(
        MultiFernet.rotate,
        ciphertext,
        f"A stored secret cannot be decrypted with any key in {SETTING}; not rotated.",
    )


def secret_hint(secret: str) -> str:
    """What the admin may show of a secret: at most its last 4 characters."""
    if not secret:
        return ""
    if len(secret) <= 8:
        return "••••"
    return "••••" + secret[-4:]
