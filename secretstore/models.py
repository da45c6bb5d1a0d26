"""Pipeline secrets and global secrets: key names and metadata, and the value when it is kept in Gofer's database.

Where a value lives is recorded per row: ``value`` holds it (AES-256-GCM ciphertext in the column, plaintext on the
Python attribute, see secretstore/fields.py) when it was written by the ``database`` backend, and is NULL when it was
written to Vault. Reads therefore follow the row, not the current ``GOFER_SECRET_BACKEND``: switching backends never
makes existing secrets unreadable, new writes simply go to the new place.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from kernel.fields import EncryptedTextField
from kernel.scope import Tenancy
from pipelines.models import Namespace, Pipeline

KEY_MAX_LENGTH = 128


class PipelineSecret(models.Model):
    """A secret of one pipeline, referenced from its variables as ``pipeline_secret{{key}}``."""

    # Direct namespace FK like every tenant row: scoping is one filter, and deleting the namespace cascades here.
    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="+")
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="secrets")
    key = models.CharField(max_length=KEY_MAX_LENGTH)
    # NULL: the value lives in Vault at <GOFER_VAULT_PREFIX>/pipelines/<namespace>/<pipeline>/<key>.
    value = EncryptedTextField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now, editable=False)
    modified = models.DateTimeField(default=timezone.now)

    # Where its rows hang, for tenant scoping in SQL (kernel/scope.py).
    tenancy = Tenancy(namespace="namespace__id", pipeline="pipeline__slug")

    class Meta:
        ordering = ["pipeline_id", "key"]
        constraints = [models.UniqueConstraint(fields=["pipeline", "key"], name="pipeline_secret_unique_key")]

    def __str__(self) -> str:
        # Never the value: this string ends up in logs, the admin and error pages.
        return f"{self.pipeline}/{self.key}"


class GlobalSecret(models.Model):
    """An admin-managed secret, usable as ``global_secret{{key}}`` from the namespaces its regexes allow."""

    key = models.CharField(max_length=KEY_MAX_LENGTH, unique=True)
    # Regexes (Python ``re.search``, like every Gofer regex target) of the namespaces allowed to use this secret.
    namespaces = models.JSONField(default=list)
    # NULL: the value lives in Vault at <GOFER_VAULT_PREFIX>/global/<key>.
    value = EncryptedTextField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now, editable=False)
    modified = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"global/{self.key}"
