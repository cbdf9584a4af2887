"""Secrets at rest: Fernet tokens under the keys of ECRPORTAL_ENCRYPTION_KEYS.

The first key encrypts; every key decrypts. A stored secret comes back from the
database as a ``Secret``: it renders as ``********`` wherever it ends up (a
template, a log line, an error page) and yields its value only through
``reveal()``, which fails loudly when no configured key fits. Ciphertext is
never handed out as if it were the value.
"""

import functools
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.signals import setting_changed
from django.db import models
from django.dispatch import receiver

from tasks_app.lib.log_masking import MASK, secret_register


class EncryptionError(Exception):
    """A secret cannot be decrypted with any configured key."""


@functools.cache
def _keys() -> MultiFernet:
    if not settings.ENCRYPTION_KEYS:
        raise EncryptionError(
            "No encryption key: set ECRPORTAL_ENCRYPTION_KEYS, or run `manage.py init_data` "
            "to generate one into ECRPORTAL_DATA_DIR."
        )
    return MultiFernet([Fernet(key) for key in settings.ENCRYPTION_KEYS])


@receiver(setting_changed)
def _reset_keys(*, setting, **kwargs):
    if setting == "ENCRYPTION_KEYS":
        _keys.cache_clear()


def encrypt(plaintext: str) -> str:
    return _keys().encrypt(plaintext.encode()).decode()


def decrypt(token: str, *, what: str = "a secret") -> str:
    try:
        return _keys().decrypt(token.encode()).decode()
    except InvalidToken:
        raise EncryptionError(
            f"Cannot decrypt {what}: none of the keys in ECRPORTAL_ENCRYPTION_KEYS fits. "
            "Add the key it was encrypted with back to the list."
        ) from None


def rotate(token: str, *, what: str = "a secret") -> str:
    """The same secret, encrypted under the newest key."""
    try:
        return _keys().rotate(token.encode()).decode()
    except InvalidToken:
        raise EncryptionError(
            f"Cannot re-encrypt {what}: none of the keys in ECRPORTAL_ENCRYPTION_KEYS fits."
        ) from None


class Secret:
    """An encrypted value as stored. Prints as ******** and reveals only on request."""

    __slots__ = ("token", "what")

    def __init__(self, token: str, what: str = "a secret"):
        self.token = token
        self.what = what

    def reveal(self) -> str:
        if not self.token:
            return ""
        value = decrypt(self.token, what=self.what)
        secret_register(value)
        return value

    def __bool__(self):
        return bool(self.token)

    def __str__(self):
        return MASK if self.token else ""

    def __repr__(self):
        return f"<Secret {MASK if self.token else 'empty'}>"

    def __eq__(self, other):
        return isinstance(other, Secret) and other.token == self.token

    def __hash__(self):
        return hash(self.token)


def plain(value: "Secret | str | None") -> str:
    """The value of a secret field: decrypted when read back, as given when just assigned."""
    if isinstance(value, Secret):
        return value.reveal()
    return value or ""


if TYPE_CHECKING:  # what the field holds: a Secret read back, or a str just assigned
    _EncryptedBase = models.TextField[Secret | str, Secret | str]
else:
    _EncryptedBase = models.TextField


class EncryptedTextField(_EncryptedBase):
    """A text column holding a Fernet token.

    Assign a plain ``str`` to store a new secret (encrypted on save); read back
    a ``Secret``. The field offers no form field, so model forms and the admin
    never show or overwrite a secret by accident: forms that set one declare
    their own write-only field.
    """

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return Secret(value, what=self._what())

    def to_python(self, value):
        return value

    def get_prep_value(self, value):
        if value is None or isinstance(value, Secret):
            return None if value is None else value.token
        if value == "":
            return ""
        return encrypt(str(value))

    def value_to_string(self, obj):
        value = self.value_from_object(obj)
        return value.token if isinstance(value, Secret) else ""

    def formfield(self, **kwargs):
        return None

    def _what(self) -> str:
        return f"{self.model._meta.label}.{self.name}"
