"""Namespaces, pipelines, configs and deployments: every change goes through these functions.

Each function is atomic: it either makes its whole change and records its events, or changes nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from events import services as events
from events.choices import EventKind
from kernel.choices import Resource
from kernel.errors import Conflict, Forbidden, NotFound, ValidationFailed
from kernel.identifiers import check_identifier, strict_int
from kernel.rbac import Principal
from pipelines import quotas
from pipelines.choices import ConfigState, DeploymentState, DeploymentStatus, PipelineState
from pipelines.models import Deployment, Namespace, Pipeline, PipelineConfig, Task
from pipelines.signals import config_deleting, namespace_deleting, pipeline_deleting
from pipelines.validation import ConfigSpec, parse_config

DEFAULT_NAMESPACE = "default"


def _text(value: object, field: str, max_length: int, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise ValidationFailed(f"{field}: required", field=field)
        return None
    if not isinstance(value, str) or len(value) > max_length or (required and not value.strip()):
        qualifier = "a non-empty string" if required else "a string"
        raise ValidationFailed(f"{field}: must be {qualifier} of at most {max_length} characters", field=field)
    return value


# --- Namespaces -------------------------------------------------------------------------------------------------------


def ensure_default_namespace() -> Namespace:
    """Create the ``default`` namespace if it is missing (at migrate time and by ``make run``)."""
    namespace, created = Namespace.objects.get_or_create(
        id=DEFAULT_NAMESPACE, defaults={"name": "Default", "description": "The default namespace."}
    )
    if created:
        events.publish(EventKind.CREATED_NAMESPACE, {"namespace_id": namespace.id}, namespace_id=namespace.id)
    return namespace


@transaction.atomic
def create_namespace(namespace_id: object, name: object, description: object) -> Namespace:
    check_identifier(namespace_id, "id")
    name = _text(name, "name", 200, required=True)
    description = _text(description, "description", 2000) or ""
    try:
        # The database refuses an id equal to another but for case (constraint namespace_unique_lower_id): the two
        # would share a log and object directory on a case-insensitive filesystem. Race-free, whoever inserts.
        with transaction.atomic():
            namespace = Namespace.objects.create(id=namespace_id, name=name, description=description)
            quotas.quotas_of(namespace.id)  # the GOFER_QUOTA_* defaults of the day it was created
    except IntegrityError:
        existing = Namespace.objects.filter(id__iexact=namespace_id).values_list("id", flat=True).first()
        if existing is not None and existing != namespace_id:
            raise Conflict(
                f"namespace {namespace_id} conflicts with the existing namespace {existing}: ids may not differ only "
                "in case",
                field="id",
            ) from None
        raise Conflict(f"namespace {namespace_id} already exists", field="id") from None
    events.publish(EventKind.CREATED_NAMESPACE, {"namespace_id": namespace.id}, namespace_id=namespace.id)
    return namespace


@transaction.atomic
def update_namespace(
    namespace: Namespace, name: object = None, description: object = None, allow_attach: object = None
) -> bool:
    """Change a namespace's name, description or attach switch (``allow_attach``: admins only, as every namespace
    change). Returns False when nothing changed."""
    name = _text(name, "name", 200)
    description = _text(description, "description", 2000)
    if name is not None and not name.strip():
        raise ValidationFailed("name: must not be empty", field="name")
    if allow_attach is not None and not isinstance(allow_attach, bool):
        raise ValidationFailed("allow_attach: must be true or false", field="allow_attach")
    changed = []
    if allow_attach is not None and allow_attach != namespace.allow_attach:
        namespace.allow_attach = allow_attach
        changed.append("allow_attach")
    if name is not None and name != namespace.name:
        namespace.name = name
        changed.append("name")
    if description is not None and description != namespace.description:
        namespace.description = description
        changed.append("description")
    if not changed:
        return False
    namespace.modified = timezone.now()
    namespace.save(update_fields=[*changed, "modified"])
    events.publish(EventKind.UPDATED_NAMESPACE, {"namespace_id": namespace.id}, namespace_id=namespace.id)
    return True


@transaction.atomic
def delete_namespace(namespace: Namespace) -> None:
    """Delete a namespace and everything in it.

    Receivers of ``namespace_deleting`` (runs, secrets, objects) release what lives outside these tables first:
    running containers are stopped, blobs and tokens removed. The cascade then removes every row, so no run can be
    started there afterwards: the pipelines no longer exist.
    """
    namespace = Namespace.objects.select_for_update().get(pk=namespace.pk)
    namespace_deleting.send(sender=Namespace, namespace=namespace)
    namespace_id = namespace.id
    namespace.delete()
    events.publish(EventKind.DELETED_NAMESPACE, {"namespace_id": namespace_id}, namespace_id=namespace_id)


# --- Pipelines ------------------------------------------------------------------------------------------------------


@transaction.atomic
def set_pipeline_state(pipeline: Pipeline, state: object) -> bool:
    """Enable or disable a pipeline. Returns False when it already was in that state."""
    if state not in (PipelineState.ACTIVE, PipelineState.DISABLED):
        raise ValidationFailed("state: must be active or disabled", field="state")
    pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
    if pipeline.state == state:
        return False
    pipeline.state = state
    pipeline.modified = timezone.now()
    pipeline.save(update_fields=["state", "modified"])
    kind = EventKind.ENABLED_PIPELINE if state == PipelineState.ACTIVE else EventKind.DISABLED_PIPELINE
    events.publish(
        kind,
        {"namespace_id": pipeline.namespace_id, "pipeline_id": pipeline.slug},
        namespace_id=pipeline.namespace_id,
        pipeline_slug=pipeline.slug,
    )
    return True


@transaction.atomic
def delete_pipeline(pipeline: Pipeline) -> None:
    """Delete a pipeline with its configs, runs, task executions, secrets and objects."""
    pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
    pipeline_deleting.send(sender=Pipeline, pipeline=pipeline)
    namespace_id, slug = pipeline.namespace_id, pipeline.slug
    pipeline.delete()
    events.publish(
        EventKind.DELETED_PIPELINE,
        {"namespace_id": namespace_id, "pipeline_id": slug},
        namespace_id=namespace_id,
        pipeline_slug=slug,
    )


# --- Configs --------------------------------------------------------------------------------------------------------


def _lock_or_create_pipeline(namespace: Namespace, slug: str) -> tuple[Pipeline, bool]:
    """The pipeline row, locked for this transaction; created if missing (registering creates pipelines)."""
    pipeline = Pipeline.objects.select_for_update().filter(namespace=namespace, slug=slug).first()
    if pipeline is not None:
        return pipeline, False
    try:
        with transaction.atomic():
            pipeline = Pipeline.objects.create(namespace=namespace, slug=slug)
    except IntegrityError:
        # Another request created it between our read and our insert: take theirs. Or one whose slug differs only
        # in case exists (constraint pipeline_unique_lower_slug_per_namespace): they would share a directory.
        existing = Pipeline.objects.select_for_update().filter(namespace=namespace, slug=slug).first()
        if existing is not None:
            return existing, False
        other = Pipeline.objects.filter(namespace=namespace, slug__iexact=slug).values_list("slug", flat=True).first()
        raise Conflict(
            f"pipeline {slug} conflicts with the existing pipeline {other}: ids may not differ only in case",
            field="pipeline_id",
        ) from None
    return pipeline, True


@transaction.atomic
def register_config(
    namespace: Namespace, pipeline_slug: str, raw_config: object, principal: Principal | None = None
) -> tuple[Pipeline, PipelineConfig]:
    """Validate and store a new config version (state ``unreleased``), creating the pipeline on first registration.

    Nothing is written unless the whole config is valid. With ``principal`` (the API), the config may grant its run
    tokens (``run_token_grants``) only what that principal may itself do on the pipeline: registering a config is no
    way to give a task more than its author has.
    """
    check_identifier(pipeline_slug, "pipeline_id")
    spec: ConfigSpec = parse_config(raw_config, pipeline_slug)
    if principal is not None:
        _check_grants_held(principal, namespace.id, pipeline_slug, spec.run_token_grants)
    spec = _within_quotas(namespace, pipeline_slug, spec, raw_config)
    pipeline, created = _lock_or_create_pipeline(namespace, pipeline_slug)
    if created:
        events.publish(
            EventKind.CREATED_PIPELINE,
            {"namespace_id": namespace.id, "pipeline_id": pipeline.slug},
            namespace_id=namespace.id,
            pipeline_slug=pipeline.slug,
        )
    pipeline.last_config_version += 1
    pipeline.modified = timezone.now()
    pipeline.save(update_fields=["last_config_version", "modified"])
    config = PipelineConfig.objects.create(
        namespace=namespace,
        pipeline=pipeline,
        version=pipeline.last_config_version,
        name=spec.name,
        description=spec.description,
        parallelism=spec.parallelism,
        parallelism_mode=spec.parallelism_mode,
        logging=spec.logging,
        run_token_grants=spec.run_token_grants,
    )
    Task.objects.bulk_create(
        [Task(config=config, position=position, **task.row_values()) for position, task in enumerate(spec.tasks)]
    )
    events.publish(
        EventKind.REGISTERED_PIPELINE_CONFIG,
        {"namespace_id": namespace.id, "pipeline_id": pipeline.slug, "version": config.version},
        namespace_id=namespace.id,
        pipeline_slug=pipeline.slug,
    )
    return pipeline, config


def _within_quotas(namespace: Namespace, pipeline_slug: str, spec: ConfigSpec, raw_config: Any) -> ConfigSpec:
    """Under the namespace lock (pipelines/quotas.py): refuse a new pipeline beyond ``pipelines``, a config with
    more tasks than ``tasks_per_pipeline`` or a task timeout above ``task_timeout`` (403); a task that sets no
    timeout gets the quota's. Returns the spec to store."""
    limits = quotas.lock(namespace.id)
    if not Pipeline.objects.filter(namespace=namespace, slug=pipeline_slug).exists():
        count = Pipeline.objects.filter(namespace=namespace).count()
        quotas.check(limits, "pipelines", count, field="pipeline_id", what=f"a new pipeline {pipeline_slug}")
    # A ceiling on each config, not a count that grows: the error says the tasks asked and the current use.
    quotas.check_ceiling(limits, "tasks_per_pipeline", len(spec.tasks), field="config.tasks")
    if limits.task_timeout is None:
        return spec
    raw_tasks = raw_config.get("tasks") or []
    tasks = []
    for index, task in enumerate(spec.tasks):
        if raw_tasks[index].get("timeout") is None:
            task = dataclasses.replace(task, timeout=min(task.timeout, limits.task_timeout))
        quotas.check_ceiling(limits, "task_timeout", task.timeout, field=f"config.tasks[{index}].timeout")
        tasks.append(task)
    return dataclasses.replace(spec, tasks=tasks)


def _check_grants_held(principal: Principal, namespace_id: str, pipeline_slug: str, grants: list[dict]) -> None:
    for index, grant in enumerate(grants):
        for resource in grant["resources"]:
            for action in grant["actions"]:
                required = {Resource.NAMESPACES: namespace_id, Resource.PIPELINES: pipeline_slug, resource: None}
                if not principal.allows(action, required):
                    field = f"config.run_token_grants[{index}]"
                    raise Forbidden(
                        f"{field}: grants {action} on {resource} to run tokens, which this token may not do itself",
                        field=field,
                    )


def parse_version(raw: object, *, allow_latest: bool = True) -> int:
    """A config version from the path: a non-negative integer, where 0 means the latest."""
    try:
        version = strict_int(raw)
    except ValueError:
        raise ValidationFailed("version: must be a non-negative integer", field="version") from None
    if version < 0 or (version == 0 and not allow_latest):
        raise ValidationFailed("version: must be a positive integer", field="version")
    return version


def get_config(pipeline: Pipeline, version: int) -> PipelineConfig:
    """A config version of ``pipeline``; version 0 is the latest registered."""
    configs = PipelineConfig.objects.filter(pipeline=pipeline).prefetch_related("tasks")
    config = configs.order_by("-version").first() if version == 0 else configs.filter(version=version).first()
    if config is None:
        raise NotFound.of("config version", version or "latest", field="version")
    return config


def live_config(pipeline: Pipeline) -> PipelineConfig | None:
    return PipelineConfig.objects.filter(pipeline=pipeline, state=ConfigState.LIVE).prefetch_related("tasks").first()


@transaction.atomic
def deploy_config(pipeline: Pipeline, version: int) -> tuple[Deployment, bool]:
    """Make ``version`` the live config: the previous live version becomes deprecated.

    Returns ``(deployment, changed)``; when the version already is live nothing changes and the deployment that made
    it live is returned. A deployment in progress makes this raise Conflict.
    """
    pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
    target = get_config(pipeline, version)
    if Deployment.objects.filter(pipeline=pipeline, state=DeploymentState.RUNNING).exists():
        raise Conflict("a deployment is already in progress for this pipeline", field="version")
    current = PipelineConfig.objects.filter(pipeline=pipeline, state=ConfigState.LIVE).first()
    if current is not None and current.pk == target.pk:
        existing = Deployment.objects.filter(pipeline=pipeline, end_version=target.version).order_by("-number").first()
        if existing is not None:
            return existing, False
    now = timezone.now()
    pipeline.last_deployment_number += 1
    pipeline.save(update_fields=["last_deployment_number"])
    start_version = current.version if current else target.version
    scope = {"namespace_id": pipeline.namespace_id, "pipeline_slug": pipeline.slug}
    details = {
        "namespace_id": pipeline.namespace_id,
        "pipeline_id": pipeline.slug,
        "start_version": start_version,
        "end_version": target.version,
    }
    deployment = Deployment.objects.create(
        namespace_id=pipeline.namespace_id,
        pipeline=pipeline,
        number=pipeline.last_deployment_number,
        start_version=start_version,
        end_version=target.version,
        started=now,
        state=DeploymentState.RUNNING,
    )
    started = events.publish(EventKind.STARTED_DEPLOYMENT, details, **scope)
    if current is not None:
        current.state = ConfigState.DEPRECATED
        current.deprecated = now
        current.save(update_fields=["state", "deprecated"])
    target.state = ConfigState.LIVE
    target.deprecated = None
    target.save(update_fields=["state", "deprecated"])
    completed = events.publish(EventKind.COMPLETED_DEPLOYMENT, details, **scope)
    deployment.state = DeploymentState.COMPLETE
    deployment.status = DeploymentStatus.SUCCESSFUL
    deployment.ended = timezone.now()
    deployment.logs = [started.id, completed.id]
    deployment.save(update_fields=["state", "status", "ended", "logs"])
    return deployment, True


@transaction.atomic
def delete_config(pipeline: Pipeline, version: int) -> None:
    """Delete an old config version. The latest and the live version cannot be deleted (400), nor one that an
    unfinished run still executes (409)."""
    pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
    config = get_config(pipeline, version)
    latest = PipelineConfig.objects.filter(pipeline=pipeline).aggregate(v=Max("version"))["v"]
    if config.version == latest:
        raise ValidationFailed(
            f"version: {config.version} is the latest version and cannot be deleted", field="version"
        )
    if config.state == ConfigState.LIVE:
        raise ValidationFailed(f"version: {config.version} is live and cannot be deleted", field="version")
    config_deleting.send(sender=PipelineConfig, config=config)
    config.delete()
    events.publish(
        EventKind.DELETED_PIPELINE_CONFIG,
        {"namespace_id": pipeline.namespace_id, "pipeline_id": pipeline.slug, "version": config.version},
        namespace_id=pipeline.namespace_id,
        pipeline_slug=pipeline.slug,
    )


def get_deployment(pipeline: Pipeline, raw_number: object) -> Deployment:
    try:
        number = strict_int(raw_number)
        if number < 1:
            raise ValueError
    except ValueError:
        raise ValidationFailed("deployment_id: must be a positive integer", field="deployment_id") from None
    deployment = Deployment.objects.filter(pipeline=pipeline, number=number).first()
    if deployment is None:
        raise NotFound.of("deployment", number, field="deployment_id")
    return deployment
