"""``manage.py check`` (and server start) refuse a secret store configuration that cannot work."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from secretstore.backends import BACKENDS, VAULT, VaultConfig


@checks.register(checks.Tags.compatibility)
def check_secret_backend(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    backend = settings.GOFER_SECRET_BACKEND
    if backend not in BACKENDS:
        return [
            checks.Error(
                f"GOFER_SECRET_BACKEND is {backend!r}",
                hint=f"use one of: {', '.join(BACKENDS)}",
                id="secretstore.E001",
            )
        ]
    if backend == VAULT:
        problem = VaultConfig.from_settings().problem()
        if problem:
            return [checks.Error(f"the Vault secret backend is not configured: {problem}", id="secretstore.E002")]
    return []
