"""Namespaces, pipelines, versioned pipeline configs, their task definitions, and deployments.

A namespace is the tenant. Every row below it carries a direct ``namespace`` foreign key, even where it could be
derived, so that tenant scoping is one filter and deleting a namespace cascades to everything in it.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from kernel.scope import Tenancy
from pipelines.choices import ConfigState, DeploymentState, DeploymentStatus, ParallelismMode, PipelineState
from pipelines.taskspec import TaskSpec, task_model_fields


class Namespace(models.Model):
    """A tenant: a group of pipelines (usually one per team). Permissions target namespaces by regex."""

    id = models.CharField(primary_key=True, max_length=32)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    # False: nobody may attach to a task of this namespace, whatever their permissions (admins set it).
    allow_attach = models.BooleanField(
        default=True, help_text="Allow attach (an interactive command in a running task) in this namespace."
    )
    created = models.DateTimeField(default=timezone.now, editable=False)
    modified = models.DateTimeField(default=timezone.now)

    # Where its rows hang, for tenant scoping in SQL (kernel/scope.py).
    tenancy = Tenancy(namespace="id")

    class Meta:
        ordering = ["id"]
        constraints = [
            # Ids that differ only in case would share a log and object directory on a case-insensitive filesystem.
            models.UniqueConstraint(Lower("id"), name="namespace_unique_lower_id"),
        ]

    def __str__(self) -> str:
        return self.id


class Pipeline(models.Model):
    """A pipeline's metadata. Its content lives in versioned PipelineConfig rows; runs use the live one."""

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="pipelines")
    slug = models.CharField("pipeline id", max_length=32)
    state = models.CharField(max_length=16, choices=PipelineState.choices, default=PipelineState.ACTIVE)
    created = models.DateTimeField(default=timezone.now, editable=False)
    modified = models.DateTimeField(default=timezone.now)
    # Per-pipeline counters. They are incremented under a row lock on this pipeline, which serialises the creation
    # of versions, runs and deployments so numbers are dense and never reused.
    last_config_version = models.PositiveIntegerField(default=0, editable=False)
    last_run_number = models.PositiveBigIntegerField(default=0, editable=False)
    last_deployment_number = models.PositiveIntegerField(default=0, editable=False)

    # Where its rows hang, for tenant scoping in SQL (kernel/scope.py).
    tenancy = Tenancy(namespace="namespace__id", pipeline="slug")

    class Meta:
        ordering = ["namespace_id", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["namespace", "slug"], name="pipeline_unique_per_namespace"),
            # As for namespace ids: slugs differing only in case would share a log and object directory.
            models.UniqueConstraint("namespace", Lower("slug"), name="pipeline_unique_lower_slug_per_namespace"),
        ]

    def __str__(self) -> str:
        return f"{self.namespace_id}/{self.slug}"


class PipelineConfig(models.Model):
    """One registered version of a pipeline. Immutable once registered, except for its deployment state."""

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="+")
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="configs")
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    # 0 means "the server default" (GOFER_PIPELINE_RUN_CONCURRENCY_LIMIT), never "unlimited".
    parallelism = models.PositiveIntegerField(default=0)
    parallelism_mode = models.CharField(max_length=16, choices=ParallelismMode.choices, default=ParallelismMode.QUEUE)
    # False: no task of this version stores or streams logs (a roadmap item).
    logging = models.BooleanField(default=True)
    # What this version's run tokens may do beyond the default (pipelines/validation.py, docs/security.md).
    run_token_grants = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=16, choices=ConfigState.choices, default=ConfigState.UNRELEASED)
    registered = models.DateTimeField(default=timezone.now, editable=False)
    deprecated = models.DateTimeField(null=True, blank=True)

    # Where its rows hang, for tenant scoping in SQL (kernel/scope.py).
    tenancy = Tenancy(namespace="namespace__id", pipeline="pipeline__slug")

    class Meta:
        ordering = ["pipeline_id", "version"]
        verbose_name = "pipeline config"
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "version"], name="config_unique_version"),
            models.UniqueConstraint(
                fields=["pipeline"], condition=Q(state=ConfigState.LIVE), name="config_one_live_per_pipeline"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline} v{self.version}"


class Task(
    type(
        "TaskFields",
        (models.Model,),
        {"__module__": __name__, "Meta": type("Meta", (), {"abstract": True}), **task_model_fields()},
    )
):
    """A task definition inside one config version. Its fields are the task spec's (pipelines/taskspec.py); only
    where it sits (config, position) is defined here."""

    config = models.ForeignKey(PipelineConfig, on_delete=models.CASCADE, related_name="tasks")
    position = models.PositiveIntegerField(default=0, help_text="Order in the registered config.")

    # Where its rows hang, for tenant scoping in SQL (kernel/scope.py).
    tenancy = Tenancy(namespace="config__namespace__id", pipeline="config__pipeline__slug")

    class Meta:
        ordering = ["config_id", "position"]
        constraints = [models.UniqueConstraint(fields=["config", "slug"], name="task_unique_per_config")]

    def __str__(self) -> str:
        return self.slug

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec.from_row(self)


class Deployment(models.Model):
    """A switch of the live config version from ``start_version`` to ``end_version``."""

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="+")
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="deployments")
    number = models.PositiveIntegerField("deployment id")
    start_version = models.PositiveIntegerField()
    end_version = models.PositiveIntegerField()
    started = models.DateTimeField(default=timezone.now)
    ended = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=DeploymentState.choices, default=DeploymentState.RUNNING)
    status = models.CharField(max_length=16, choices=DeploymentStatus.choices, default=DeploymentStatus.UNKNOWN)
    status_reason = models.JSONField(null=True, blank=True)
    # Ids of the events emitted while deploying, in order.
    logs = models.JSONField(default=list, blank=True)

    # Where its rows hang, for tenant scoping in SQL (kernel/scope.py).
    tenancy = Tenancy(namespace="namespace__id", pipeline="pipeline__slug")

    class Meta:
        ordering = ["pipeline_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "number"], name="deployment_unique_number"),
            # At most one deployment in progress per pipeline (Gofer answers a second one with 409).
            models.UniqueConstraint(
                fields=["pipeline"], condition=Q(state="Running"), name="deployment_one_running_per_pipeline"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline} deployment {self.number}"


class NamespaceQuotas(models.Model):
    """What one namespace may use (pipelines/quotas.py, docs/quotas.md). Empty: no limit. Created with the namespace
    from the GOFER_QUOTA_* settings; admins change it in the admin or with PUT .../quotas."""

    namespace = models.OneToOneField(Namespace, primary_key=True, on_delete=models.CASCADE, related_name="quotas")
    concurrent_runs = models.PositiveIntegerField(
        null=True, blank=True, help_text="Runs running at once; more wait in the queue. Empty: no limit."
    )
    queued_runs = models.PositiveIntegerField(
        null=True, blank=True, help_text="Runs waiting to start; more are refused (429). Empty: no limit."
    )
    runs_per_hour = models.PositiveIntegerField(
        null=True, blank=True, help_text="Runs started in any hour; more are refused (429). Empty: no limit."
    )
    pipelines = models.PositiveIntegerField(null=True, blank=True, help_text="Pipelines. Empty: no limit.")
    tasks_per_pipeline = models.PositiveIntegerField(
        null=True, blank=True, help_text="Tasks in one config version. Empty: no limit."
    )
    task_timeout = models.PositiveIntegerField(
        null=True, blank=True, help_text="Longest task timeout, seconds (tasks without one get this). Empty: no limit."
    )
    run_duration = models.PositiveIntegerField(
        null=True, blank=True, help_text="Longest run, seconds; a longer run is cancelled. Empty: no limit."
    )
    object_bytes = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Bytes of pipeline and run objects together. Empty: no limit."
    )
    secrets = models.PositiveIntegerField(null=True, blank=True, help_text="Pipeline secrets. Empty: no limit.")
    weight = models.PositiveIntegerField(
        default=1, help_text="Share of the server's run slots when runs wait for the global limit (fair scheduling)."
    )
    # Fair scheduling's virtual time (runs/engine/admission.py, stride scheduling): grows by STRIDE / weight with
    # each run admitted; the namespace with the lowest value gets the next free slot.
    admission_pass = models.PositiveBigIntegerField(default=0, editable=False)
    modified = models.DateTimeField(default=timezone.now)

    # Where its rows hang, for tenant scoping in SQL (kernel/scope.py).
    tenancy = Tenancy(namespace="namespace__id")

    class Meta:
        verbose_name = "namespace quotas"
        verbose_name_plural = "namespace quotas"
        constraints = [models.CheckConstraint(condition=Q(weight__gte=1), name="namespace_quotas_weight_positive")]

    def __str__(self) -> str:
        return f"quotas of {self.namespace_id}"
