"""Runs, task executions and the per-run timeline."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from kernel.fields import EncryptedTextField
from kernel.scope import Tenancy
from pipelines.models import Namespace, Pipeline, PipelineConfig
from runs.choices import (
    RunState,
    RunStatus,
    RunStatusReason,
    TaskExecutionState,
    TaskExecutionStatus,
    TaskExecutionStatusReason,
)


class Run(models.Model):
    """One execution of a pipeline's live config version.

    ``number`` is Gofer's ``run_id``: a per-pipeline counter from 1. The config version is copied onto the run so that
    history survives the deletion of an old config (the foreign key then becomes NULL); an unfinished run's config
    cannot be deleted.
    """

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="+")
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="runs")
    number = models.PositiveBigIntegerField("run id")
    config = models.ForeignKey(PipelineConfig, on_delete=models.SET_NULL, null=True, related_name="runs")
    config_version = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.PENDING, db_index=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.UNKNOWN)
    status_reason = models.CharField(max_length=32, choices=RunStatusReason.choices, blank=True, default="")
    status_description = models.TextField(blank=True, default="")
    # {"id": token id, "user": token user, "kind": "human" | "extension" | ...}
    initiator = models.JSONField(default=dict)
    # [{"key", "value", "source"}]: the run's own variables (source run_options or extension).
    variables = models.JSONField(default=list, blank=True)
    token = models.ForeignKey(
        "access.Token", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    # The run token's plaintext, for GOFER_TOKEN in tasks started later (or by another worker); encrypted at rest,
    # erased when the token is revoked with the run's objects.
    token_secret = EncryptedTextField(null=True, blank=True, editable=False)
    store_objects_expired = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now, editable=False, help_text="When the run was queued.")
    started = models.DateTimeField(null=True, blank=True)
    ended = models.DateTimeField(null=True, blank=True)
    # Set by a cancellation request; the orchestrator acts on it. Who asked, and why, goes to status_reason.
    cancel_requested = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=32, choices=RunStatusReason.choices, blank=True, default="")
    cancel_description = models.TextField(blank=True, default="")
    # The trace the run's spans belong to and the span that started it (the request's, or a trigger firing's):
    # {"trace_id", "parent_span_id"} in hex, {} when traces were off (telemetry/tracing.py).
    trace_context = models.JSONField(default=dict, blank=True, editable=False)

    # Where its rows hang, for tenant scoping in SQL (kernel/scope.py).
    tenancy = Tenancy(namespace="namespace__id", pipeline="pipeline__slug")

    class Meta:
        ordering = ["pipeline_id", "number"]
        constraints = [models.UniqueConstraint(fields=["pipeline", "number"], name="run_unique_number")]
        indexes = [models.Index(fields=["state", "created"], name="run_state_created_idx")]

    def __str__(self) -> str:
        return f"{self.pipeline} run {self.number}"


class TaskExecution(models.Model):
    """One container run of one task in one run.

    ``task`` is a snapshot of the task definition as it was when the run started, so a run's record does not change
    when configs do. The scheduler fields record what the engine was asked to run and what it really ran.
    """

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="+")
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="task_executions")
    task_slug = models.CharField("task id", max_length=64)
    task = models.JSONField(default=dict)
    created = models.DateTimeField(default=timezone.now, editable=False)
    started = models.DateTimeField(null=True, blank=True)
    ended = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    state = models.CharField(
        max_length=16, choices=TaskExecutionState.choices, default=TaskExecutionState.WAITING, db_index=True
    )
    status = models.CharField(max_length=16, choices=TaskExecutionStatus.choices, default=TaskExecutionStatus.UNKNOWN)
    status_reason = models.CharField(max_length=32, choices=TaskExecutionStatusReason.choices, blank=True, default="")
    status_description = models.TextField(blank=True, default="")
    # [{"key", "value", "source"}]: the final environment, with secret and object references left unresolved.
    variables = models.JSONField(default=list, blank=True)
    logs_expired = models.BooleanField(default=False)
    logs_removed = models.BooleanField(default=False)
    # What the scheduler ran.
    scheduler = models.CharField(max_length=16, blank=True, default="")
    container_id = models.CharField(max_length=128, blank=True, default="")
    image_digest = models.CharField(max_length=256, blank=True, default="")
    # A worker owns an active task execution while its lease holds; the reconciler re-drives expired leases.
    lease_owner = models.CharField(max_length=64, blank=True, default="", editable=False)
    lease_expires = models.DateTimeField(null=True, blank=True, editable=False)
    cancel_requested = models.DateTimeField(null=True, blank=True)
    cancel_wait_for = models.PositiveIntegerField(null=True, blank=True)
    # Who asked: user_cancelled or admin_cancelled (a run's own reason when its cancellation reached this task).
    cancel_reason = models.CharField(max_length=32, choices=RunStatusReason.choices, blank=True, default="")
    cancel_description = models.TextField(blank=True, default="")
    # Set when the orchestrator decided to stop the container (cancel or timeout): SIGTERM was sent at
    # ``stop_signalled`` and SIGKILL follows at ``stop_deadline`` if it is still running.
    stop_reason = models.CharField(max_length=32, choices=TaskExecutionStatusReason.choices, blank=True, default="")
    stop_signalled = models.DateTimeField(null=True, blank=True, editable=False)
    stop_deadline = models.DateTimeField(null=True, blank=True, editable=False)
    # Transient engine failures (engine unreachable) before the container started; bounded retries.
    start_attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    # Unexpected errors while driving it (a bug, an engine answer we do not understand); bounded, then it fails.
    drive_errors = models.PositiveSmallIntegerField(default=0, editable=False)

    # Where its rows hang, for tenant scoping in SQL (kernel/scope.py).
    tenancy = Tenancy(namespace="namespace__id", pipeline="pipeline__slug")

    class Meta:
        ordering = ["run_id", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "task_slug"], name="task_execution_unique_per_run")]

    def __str__(self) -> str:
        return f"{self.run} task {self.task_slug}"


class TimelineEntry(models.Model):
    """One line of a run's story as the orchestrator saw it: queued, admitted, each task waiting/started/finished."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="timeline")
    at = models.DateTimeField(default=timezone.now)
    task_slug = models.CharField(max_length=64, blank=True, default="")
    kind = models.CharField(max_length=64)
    message = models.TextField()

    # Where its rows hang, for tenant scoping in SQL (kernel/scope.py).
    tenancy = Tenancy(namespace="run__namespace__id", pipeline="run__pipeline__slug")

    class Meta:
        ordering = ["run_id", "id"]
        verbose_name_plural = "timeline entries"

    def __str__(self) -> str:
        return f"{self.run} {self.kind}"
