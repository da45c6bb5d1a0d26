"""Key records of the object store. The bytes live on a backend (objectstore/backends.py), named by ``blob``.

Three scopes, as in Gofer: pipeline objects (kept until deleted or evicted by the per-pipeline count limit), run
objects (deleted when the run leaves the newest ``GOFER_RUN_OBJECT_EXPIRY`` runs) and extension objects (each
extension's private store). A row exists only once its blob is complete and durable; ``blob`` is a name the backend
generated, never derived from the user's key, so keys cannot reach the file system.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from kernel.scope import Tenancy
from pipelines.models import Namespace, Pipeline
from runs.models import Run

KEY_MAX_LENGTH = 256


class StoredObject(models.Model):
    """What every object record has: its key, what its bytes are, and where they are."""

    key = models.CharField(max_length=KEY_MAX_LENGTH)
    size = models.PositiveBigIntegerField(help_text="Bytes.")
    sha256 = models.CharField("SHA-256", max_length=64, help_text="Hex digest of the bytes, computed while storing.")
    blob = models.CharField(max_length=128, editable=False, help_text="The backend's name for the bytes.")
    # Set again on every overwrite: Gofer's "created" is when this value was stored, and the pipeline count limit
    # evicts the least recently stored object.
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.key


class PipelineObject(StoredObject):
    """An object of one pipeline, readable by every run of it (``pipeline_object{{key}}``)."""

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="+")
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="stored_objects")

    # Where its rows hang, for tenant scoping in SQL (kernel/scope.py).
    tenancy = Tenancy(namespace="namespace__id", pipeline="pipeline__slug")

    class Meta:
        ordering = ["pipeline_id", "created", "id"]
        verbose_name = "pipeline object"
        constraints = [models.UniqueConstraint(fields=["pipeline", "key"], name="pipeline_object_unique_key")]
        indexes = [models.Index(fields=["pipeline", "created"], name="pipeline_object_age_idx")]


class RunObject(StoredObject):
    """An object of one run (``run_object{{key}}``); gone once the run's objects expire."""

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="+")
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="stored_objects")

    # Where its rows hang, for tenant scoping in SQL (kernel/scope.py).
    tenancy = Tenancy(namespace="namespace__id", pipeline="pipeline__slug")

    class Meta:
        ordering = ["run_id", "created", "id"]
        verbose_name = "run object"
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="run_object_unique_key")]


class ExtensionObject(StoredObject):
    """An object in one extension's private store.

    ``extension_id`` is a plain string: the extension registry is a later piece of work. When it lands, deleting a
    registration should call ``objectstore.services.delete_extension_objects``.
    """

    extension_id = models.CharField(max_length=64)

    class Meta:
        ordering = ["extension_id", "created", "id"]
        verbose_name = "extension object"
        constraints = [
            models.UniqueConstraint(fields=["extension_id", "key"], name="extension_object_unique_key"),
        ]
