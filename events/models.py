"""The event log."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from events.choices import EventKind
from kernel.scope import Tenancy


class Event(models.Model):
    """One state change, as Gofer v0 names it (``{"kind": {"queued_run": {...}}}``).

    The id increases with insertion; listeners resume after an id. ``namespace_id`` is kept as plain text, not a
    foreign key, so that the events of a deleted namespace (``deleted_namespace`` above all) outlive it; it is what
    tenant scoping filters on. Events without a namespace (roles, tokens, system) are visible to admins only.
    """

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=64, choices=EventKind.choices, db_index=True)
    details = models.JSONField(default=dict)
    emitted = models.DateTimeField(default=timezone.now, db_index=True)
    namespace_id = models.CharField(max_length=32, null=True, blank=True, db_index=True)
    pipeline_slug = models.CharField(max_length=32, null=True, blank=True)
    run_number = models.PositiveBigIntegerField(null=True, blank=True)

    # Where its rows hang, for tenant scoping in SQL (kernel/scope.py).
    tenancy = Tenancy(namespace="namespace_id", pipeline="pipeline_slug", pipeline_optional=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["namespace_id", "pipeline_slug", "run_number"], name="event_run_idx")]

    def __str__(self) -> str:
        return f"{self.id} {self.kind}"
