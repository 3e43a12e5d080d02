"""A text field stored Fernet-encrypted, keyed from settings.FIELD_ENCRYPTION_KEYS.

MultiFernet encrypts with the first key and decrypts with any, so keys can be rotated by
prepending a new one and re-saving rows.
"""

from functools import cache
from typing import Any

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.db import models


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    """The keys were validated when settings loaded (tickerproject.settings.secrets.fernet_keys)."""
    return MultiFernet([Fernet(key) for key in keys])


def field_cipher() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


class EncryptedTextField(models.TextField):
    """Plain ``str`` in Python, Fernet token in the database. Not searchable by design."""

    def get_prep_value(self, value: Any) -> str | None:
        value = super().get_prep_value(value)
        if value is None:
            return None
        return field_cipher().encrypt(str(value).encode()).decode()

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None:
            return None
        return field_cipher().decrypt(value.encode()).decode()
