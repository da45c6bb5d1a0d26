"""Namespaces, pipelines, config versions, their tasks and deployments in the operators' console.

Everything the engine owns is read-only. Namespaces are created, renamed and deleted through the services; pipelines
are enabled, disabled and deleted through them; a config version is deployed or deleted through them. Scoping for
non-superuser staff comes from ``console.mixins.NamespacedAdminMixin``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Count, JSONField, OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest

from console.mixins import (
    REDACTED,
    NamespacedAdminMixin,
    ReadOnlyInlineMixin,
    ThroughServicesMixin,
    admin_link,
    apply_each,
    changelist_link,
    pretty_json,
    principal_of,
    report,
)
from events.models import Event
from kernel import scope as tenancy
from kernel.choices import Action, Resource
from kernel.errors import GoferError, ValidationFailed
from kernel.fields import EncryptedJSONField
from kernel.identifiers import check_identifier
from pipelines import quotas, services
from pipelines.choices import ConfigState, PipelineState
from pipelines.models import Deployment, Namespace, NamespaceQuotas, Pipeline, PipelineConfig, Task
from pipelines.taskspec import TaskSpec

CONFIGS = (Resource.CONFIGS,)
DEPLOYMENTS = (Resource.DEPLOYMENTS,)


def _registry_auth(value: dict | None) -> str:
    if not value:
        return "-"
    return f"user {value.get('user', '')}, password {REDACTED}"


# --- Namespaces -------------------------------------------------------------------------------------------------------


class NamespaceForm(forms.ModelForm):
    class Meta:
        model = Namespace
        fields = ("id", "name", "description")

    def clean_id(self) -> str:
        try:
            return check_identifier(self.cleaned_data["id"], "id")
        except ValidationFailed as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_description(self) -> str:
        description = self.cleaned_data.get("description") or ""
        if len(description) > 2000:
            raise forms.ValidationError("description: at most 2000 characters")
        return description


class PipelineInline(NamespacedAdminMixin, ReadOnlyInlineMixin, admin.TabularInline):
    model = Pipeline
    fields = ("pipeline_link", "state", "last_config_version", "last_run_number", "modified")
    readonly_fields = fields
    verbose_name_plural = "pipelines"

    @admin.display(description="pipeline")
    def pipeline_link(self, pipeline: Pipeline) -> str:
        return admin_link(pipeline, pipeline.slug)


@admin.register(Namespace)
class NamespaceAdmin(NamespacedAdminMixin, ThroughServicesMixin, admin.ModelAdmin):
    """Namespaces (tenants). Creating, renaming and deleting need the admin role, as in the API."""

    form = NamespaceForm
    list_display = ("id", "name", "pipeline_count", "created", "modified")
    search_fields = ("id", "name", "description")
    readonly_fields = ("created", "modified")
    inlines = (PipelineInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        principal = principal_of(request)
        if principal.superuser:
            return queryset.annotate(_pipelines=Count("pipelines"))
        visible = tenancy.restrict(Pipeline.objects.all(), principal, Action.READ).values("pk")
        return queryset.annotate(_pipelines=Count("pipelines", filter=Q(pipelines__in=visible)))

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.inlines if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("id", "name", "description")
        return ("id", "name", "description", "allow_attach", "quotas_link", "created", "modified")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("id", "quotas_link", *self.readonly_fields) if obj is not None else ()

    @admin.display(description="quotas")
    def quotas_link(self, namespace: Namespace) -> str:
        # quotas_of: a namespace older than quotas gets its row (the GOFER_QUOTA_* defaults) when first shown.
        return admin_link(quotas.quotas_of(namespace.id), "limits, weight and current use")

    @admin.display(description="pipelines", ordering="_pipelines")
    def pipeline_count(self, namespace: Namespace) -> int:
        return namespace._pipelines

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request, Action.WRITE, admin=True)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request, Action.WRITE, obj, admin=True)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request, Action.DELETE, obj, admin=True)

    def save_with_service(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> Namespace:
        data = form.cleaned_data
        if not change:
            return services.create_namespace(data["id"], data["name"], data["description"])
        current = Namespace.objects.get(pk=obj.pk)
        services.update_namespace(current, data["name"], data["description"], data.get("allow_attach"))
        return current

    def delete_with_service(self, request: HttpRequest, obj: Namespace) -> None:
        services.delete_namespace(obj)


class NamespaceQuotasForm(forms.ModelForm):
    class Meta:
        model = NamespaceQuotas
        fields = (*quotas.NAMES, "weight")


@admin.register(NamespaceQuotas)
class NamespaceQuotasAdmin(NamespacedAdminMixin, ThroughServicesMixin, admin.ModelAdmin):
    """A namespace's quotas (pipelines/quotas.py): readable with the namespace, changed by admins only, through
    ``quotas.update_quotas`` as with PUT .../quotas. Each row is made with its namespace."""

    form = NamespaceQuotasForm
    list_display = ("namespace", "concurrent_runs", "queued_runs", "runs_per_hour", "pipelines", "weight")
    search_fields = ("namespace__id",)
    readonly_fields = ("namespace", "current_use", "modified")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("namespace", *quotas.NAMES, "weight", "current_use", "modified")

    @admin.display(description="current use")
    def current_use(self, row: NamespaceQuotas) -> str:
        use = quotas.usage(row.namespace_id)
        return ", ".join(f"{name}: {use[name]} {quotas.BY_NAME[name].unit}" for name in quotas.NAMES)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request, Action.WRITE, obj, admin=True)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_with_service(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> NamespaceQuotas:
        namespace = Namespace.objects.get(pk=obj.namespace_id)
        row, _ = quotas.update_quotas(
            namespace, {name: form.cleaned_data.get(name) for name in (*quotas.NAMES, "weight")}
        )
        return row


# --- Pipelines --------------------------------------------------------------------------------------------------------


class ConfigInline(NamespacedAdminMixin, ReadOnlyInlineMixin, admin.TabularInline):
    """A pipeline's config versions, newest first, each linking to its own page."""

    model = PipelineConfig
    fk_name = "pipeline"
    scope_resources = CONFIGS
    fields = ("version_link", "name", "state", "task_count", "registered", "deprecated")
    readonly_fields = fields
    ordering = ("-version",)
    verbose_name_plural = "config versions"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(_tasks=Count("tasks"))

    @admin.display(description="version")
    def version_link(self, config: PipelineConfig) -> str:
        return admin_link(config, f"v{config.version}")

    @admin.display(description="tasks")
    def task_count(self, config: PipelineConfig) -> int:
        return config._tasks


def _live_version() -> Subquery:
    return Subquery(
        PipelineConfig.objects.filter(pipeline=OuterRef("pk"), state=ConfigState.LIVE).values("version")[:1]
    )


@admin.register(Pipeline)
class PipelineAdmin(NamespacedAdminMixin, ThroughServicesMixin, admin.ModelAdmin):
    """Pipelines: created by registering a config (API); enabled, disabled and deleted here through the services."""

    list_display = ("slug", "namespace", "state", "live_version", "last_config_version", "run_count", "modified")
    list_filter = ("state", ("namespace", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("namespace",)
    search_fields = ("slug", "namespace__id", "namespace__name")
    date_hierarchy = "created"
    actions = ("disable_pipelines", "enable_pipelines")
    fields = (
        "namespace",
        "slug",
        "state",
        "live_version",
        "last_config_version",
        "last_run_number",
        "last_deployment_number",
        "created",
        "modified",
        "related",
    )
    readonly_fields = fields
    inlines = (ConfigInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(_live_version=_live_version())

    @admin.display(description="live version", ordering="_live_version")
    def live_version(self, pipeline: Pipeline) -> str:
        return f"v{pipeline._live_version}" if pipeline._live_version else "none"

    @admin.display(description="runs", ordering="last_run_number")
    def run_count(self, pipeline: Pipeline) -> int:
        return pipeline.last_run_number

    @admin.display(description="see also")
    def related(self, pipeline: Pipeline) -> str:
        links = [
            changelist_link("runs.Run", "runs", pipeline__id__exact=pipeline.pk),
            changelist_link(Deployment, "deployments", pipeline__id__exact=pipeline.pk),
            changelist_link(Event, "events", namespace_id=pipeline.namespace_id, pipeline_slug=pipeline.slug),
        ]
        return " · ".join(links)

    def has_write_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request, Action.WRITE, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request, Action.DELETE, obj)

    def delete_with_service(self, request: HttpRequest, obj: Pipeline) -> None:
        services.delete_pipeline(obj)

    def _set_state(self, request: HttpRequest, queryset: QuerySet, state: str) -> None:
        rows, outcome = self.split_allowed(request, queryset, Action.WRITE)
        apply_each(rows, lambda pipeline: services.set_pipeline_state(pipeline, state), outcome)
        verb = "disable" if state == PipelineState.DISABLED else "enable"
        report(self, request, outcome, verb=verb, done=f"{verb.capitalize()}d", unchanged=f"already {state}")

    @admin.action(description="Disable selected pipelines (set_pipeline_state)", permissions=["write"])
    def disable_pipelines(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_state(request, queryset, PipelineState.DISABLED)

    @admin.action(description="Enable selected pipelines (set_pipeline_state)", permissions=["write"])
    def enable_pipelines(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_state(request, queryset, PipelineState.ACTIVE)


# --- Config versions and their tasks ----------------------------------------------------------------------------------


def _task_display(name: str) -> tuple[str, Any]:
    """How the admin shows task spec field ``name``: (the admin field name, a display method or None). JSON is
    pretty-printed and credentials are redacted; the rest is shown as stored."""
    column = TaskSpec.column(name)
    model_field = Task._meta.get_field(column)
    if isinstance(model_field, EncryptedJSONField):

        def show(self: Any, task: Task) -> str:
            return _registry_auth(getattr(task, column))

    elif isinstance(model_field, JSONField):

        def show(self: Any, task: Task) -> str:
            return pretty_json(getattr(task, column))

    else:
        return column, None
    show.short_description = name.replace("_", " ")  # type: ignore[attr-defined]
    return f"{column}_display", show


class TaskSpecDisplays:
    """Display methods for the task spec's fields, generated: a new task field appears in the admin by itself."""


TASK_FIELDS: list[str] = []
TASK_LISTED: list[str] = []
for _name, _field in TaskSpec.fields():
    _admin_name, _method = _task_display(_name)
    if _method is not None:
        setattr(TaskSpecDisplays, _admin_name, _method)
    TASK_FIELDS.append(_admin_name)
    if _field.listed or _name == "registry_auth":
        TASK_LISTED.append(_admin_name)


class TaskInline(TaskSpecDisplays, NamespacedAdminMixin, ReadOnlyInlineMixin, admin.TabularInline):
    model = Task
    scope_resources = CONFIGS
    fields = tuple(TASK_LISTED)
    readonly_fields = fields


@admin.register(PipelineConfig)
class PipelineConfigAdmin(NamespacedAdminMixin, ThroughServicesMixin, admin.ModelAdmin):
    """Registered config versions: immutable. Deploy one with the action (deploy_config); delete an old one
    through delete_config (the latest and the live version cannot be deleted)."""

    scope_resources = CONFIGS
    list_display = ("__str__", "name", "state", "task_count", "parallelism", "registered", "deprecated")
    list_filter = ("state", "parallelism_mode", ("namespace", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("pipeline",)
    search_fields = ("pipeline__slug", "namespace__id", "name", "version__exact")
    date_hierarchy = "registered"
    actions = ("deploy_configs",)
    fields = (
        "namespace",
        "pipeline",
        "version",
        "name",
        "description",
        "state",
        "parallelism",
        "parallelism_mode",
        "logging",
        "registered",
        "deprecated",
    )
    readonly_fields = fields
    inlines = (TaskInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(_tasks=Count("tasks"))

    @admin.display(description="tasks", ordering="_tasks")
    def task_count(self, config: PipelineConfig) -> int:
        return config._tasks

    def has_deploy_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request, Action.WRITE, obj, (Resource.CONFIGS, Resource.DEPLOYMENTS))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request, Action.DELETE, obj)

    def delete_with_service(self, request: HttpRequest, obj: PipelineConfig) -> None:
        services.delete_config(obj.pipeline, obj.version)

    @admin.action(description="Deploy selected version: make it live (deploy_config)", permissions=["deploy"])
    def deploy_configs(self, request: HttpRequest, queryset: QuerySet) -> None:
        rows, outcome = self.split_allowed(
            request, queryset.select_related("pipeline"), Action.WRITE, (Resource.CONFIGS, Resource.DEPLOYMENTS)
        )
        by_pipeline: dict[int, list[PipelineConfig]] = defaultdict(list)
        for config in rows:
            by_pipeline[config.pipeline_id].append(config)
        for configs in by_pipeline.values():
            if len(configs) > 1:
                versions = ", ".join(f"v{c.version}" for c in configs)
                outcome.failed.append(f"{configs[0].pipeline} (select one version per pipeline, not {versions})")
                continue
            config = configs[0]
            try:
                deployment, changed = services.deploy_config(config.pipeline, config.version)
            except GoferError as exc:
                outcome.failed.append(f"{config} ({exc.message})")
                continue
            if changed:
                outcome.done.append(f"{config} (deployment {deployment.number})")
            else:
                outcome.unchanged.append(str(config))
        report(self, request, outcome, verb="deploy", done="Deployed", unchanged="already live")


@admin.register(Task)
class TaskAdmin(TaskSpecDisplays, NamespacedAdminMixin, admin.ModelAdmin):
    """Task definitions of config versions: read-only, registry passwords never shown. Fields come from the task
    spec (pipelines/taskspec.py)."""

    scope_resources = CONFIGS
    list_display = ("slug", "config", "image", "position", "timeout", "inject_api_token")
    list_filter = (
        "inject_api_token",
        "always_pull_newest_image",
        ("config__namespace", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("config__pipeline",)
    search_fields = ("slug", "image", "config__pipeline__slug", "config__namespace__id")
    fields = ("config", "position", *TASK_FIELDS)
    readonly_fields = fields


# --- Deployments ------------------------------------------------------------------------------------------------------


@admin.register(Deployment)
class DeploymentAdmin(NamespacedAdminMixin, admin.ModelAdmin):
    """Deployments: written by deploy_config only."""

    scope_resources = DEPLOYMENTS
    list_display = ("__str__", "start_version", "end_version", "state", "status", "started", "ended")
    list_filter = ("state", "status", ("namespace", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("pipeline",)
    search_fields = ("pipeline__slug", "namespace__id", "number__exact")
    date_hierarchy = "started"
    fields = (
        "namespace",
        "pipeline",
        "number",
        "start_version",
        "end_version",
        "state",
        "status",
        "status_reason",
        "started",
        "ended",
        "event_links",
    )
    readonly_fields = fields

    @admin.display(description="events")
    def event_links(self, deployment: Deployment) -> str:
        if not deployment.logs:
            return "-"
        ids = ",".join(str(event_id) for event_id in deployment.logs)
        return changelist_link(Event, f"{len(deployment.logs)} events", id__in=ids)
