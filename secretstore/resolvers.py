"""How ``pipeline_secret{{key}}`` and ``global_secret{{key}}`` resolve (registered in kernel/references.py)."""

from __future__ import annotations

from typing import Any

from kernel.references import UnresolvedReference
from secretstore import services
from secretstore.services import SecretResolutionError, SecretStoreUnavailable


def pipeline_secret(key: str, pipeline: Any, run: Any | None) -> str:
    try:
        return services.resolve_pipeline_secret(pipeline, key)
    except SecretResolutionError as exc:
        raise UnresolvedReference(exc.message, transient=isinstance(exc, SecretStoreUnavailable)) from None


def global_secret(key: str, pipeline: Any, run: Any | None) -> str:
    """The namespace check of the secret's regexes is repeated here, at use time (secretstore/services.py)."""
    try:
        return services.resolve_global_secret(pipeline.namespace_id, key)
    except SecretResolutionError as exc:
        raise UnresolvedReference(exc.message, transient=isinstance(exc, SecretStoreUnavailable)) from None
