"""Model fields whose values are encrypted at rest (kernel/encryption.py).

Every credential Gofer keeps in its own database goes through these fields: secret values, registry passwords,
sensitive trigger and notifier settings. The column holds only ciphertext; the Python attribute holds plaintext.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import models

from kernel import encryption


class EncryptedTextField(models.TextField):
    """A text value stored as AES-256-GCM ciphertext bound to ``<app>.<Model>.<field>``."""

    def contribute_to_class(self, cls: type[models.Model], name: str, *args: Any, **kwargs: Any) -> None:
        super().contribute_to_class(cls, name, *args, **kwargs)
        self.crypto_context = f"{cls._meta.label}.{name}"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        return encryption.decrypt(value, self.crypto_context)

    def get_prep_value(self, value: Any) -> str | None:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encryption.encrypt(value, self.crypto_context)


class EncryptedJSONField(EncryptedTextField):
    """A JSON value (dict, list, ...) stored encrypted; ``None`` stays NULL."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        text = super().from_db_value(value, expression, connection)
        if text is None or text == "":
            return None
        return json.loads(text)

    def to_python(self, value: Any) -> Any:
        return value

    def get_prep_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return encryption.encrypt(json.dumps(value, sort_keys=True), self.crypto_context)

    def value_to_string(self, obj: models.Model) -> str:
        # Serialization (dumpdata) keeps the ciphertext, never the plaintext.
        return self.get_prep_value(self.value_from_object(obj)) or ""
