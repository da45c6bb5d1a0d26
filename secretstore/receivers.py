"""Receivers of ``pipelines.signals``: a deleted namespace or pipeline takes its Vault entries with it.

The rows cascade away in the deleting transaction; the values they point to in Vault are deleted once that
transaction has committed (see ``services.release_vault_entries_on_commit`` for why after, not before).
"""

from __future__ import annotations

from typing import Any

from pipelines.models import Namespace, Pipeline
from secretstore import services
from secretstore.models import PipelineSecret


def release_namespace_secrets(sender: Any, namespace: Namespace, **kwargs: Any) -> None:
    paths = services.vault_paths_of(PipelineSecret.objects.filter(namespace=namespace))
    services.release_vault_entries_on_commit(paths, f"namespace {namespace.id} was deleted")


def release_pipeline_secrets(sender: Any, pipeline: Pipeline, **kwargs: Any) -> None:
    paths = services.vault_paths_of(PipelineSecret.objects.filter(pipeline=pipeline))
    services.release_vault_entries_on_commit(paths, f"pipeline {pipeline} was deleted")
