"""Runs, task executions and run timelines in the operators' console.

All of it is written by the engine and read-only here. Operators cancel runs and task executions with the actions,
which call ``runs.services.cancel_run`` / ``cancel_task_execution`` with the staff user's principal, exactly as the
API's DELETE does. Scoping for non-superuser staff comes from ``console.mixins.NamespacedAdminMixin``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from console.mixins import (
    REDACTED,
    NamespacedAdminMixin,
    ReadOnlyInlineMixin,
    admin_link,
    apply_each,
    pretty_json,
    principal_of,
    report,
)
from kernel.choices import Action, Resource
from runs import services
from runs.choices import UNFINISHED_RUN_STATES, RunState, RunStatus
from runs.models import Run, TaskExecution, TimelineEntry

RUNS = (Resource.RUNS,)
TASK_EXECUTIONS = (Resource.RUNS, Resource.TASK_EXECUTIONS)


def _duration(started: Any, ended: Any) -> str:
    if started is None or ended is None:
        return "-"
    seconds = int((ended - started).total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def _variables(variables: list[dict[str, Any]]) -> str:
    # Stored with secret and object references unresolved and the run token as a placeholder (runs/variables.py):
    # nothing here is a plaintext secret.
    return pretty_json(variables or [])


class RunProgressFilter(admin.SimpleListFilter):
    """The lists operators ask for first, as one filter (the role of django-q2's Success/Failure lists)."""

    title = "quick lists"
    parameter_name = "progress"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("active", "Active (pending or running)"),
            ("failed", "Failed"),
            ("cancelled", "Cancelled"),
            ("cancelling", "Cancel requested, not finished"),
            ("successful", "Successful"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        value = self.value()
        if value == "active":
            return queryset.filter(state__in=UNFINISHED_RUN_STATES)
        if value == "failed":
            return queryset.filter(state=RunState.COMPLETE, status=RunStatus.FAILED)
        if value == "cancelled":
            return queryset.filter(state=RunState.COMPLETE, status=RunStatus.CANCELLED)
        if value == "cancelling":
            return queryset.filter(state__in=UNFINISHED_RUN_STATES, cancel_requested__isnull=False)
        if value == "successful":
            return queryset.filter(state=RunState.COMPLETE, status=RunStatus.SUCCESSFUL)
        return queryset


class TaskExecutionInline(NamespacedAdminMixin, ReadOnlyInlineMixin, admin.TabularInline):
    model = TaskExecution
    scope_resources = TASK_EXECUTIONS
    fields = ("task_link", "state", "status", "status_reason", "exit_code", "started", "ended", "duration")
    readonly_fields = fields
    verbose_name_plural = "task executions"

    @admin.display(description="task")
    def task_link(self, te: TaskExecution) -> str:
        return admin_link(te, te.task_slug)

    @admin.display(description="duration")
    def duration(self, te: TaskExecution) -> str:
        return _duration(te.started, te.ended)


class TimelineInline(NamespacedAdminMixin, ReadOnlyInlineMixin, admin.TabularInline):
    model = TimelineEntry
    scope_resources = RUNS
    fields = ("at", "task_slug", "kind", "message")
    readonly_fields = fields
    verbose_name_plural = "timeline"


@admin.register(Run)
class RunAdmin(NamespacedAdminMixin, admin.ModelAdmin):
    """Runs: read-only; cancel with the action."""

    scope_resources = RUNS
    list_display = (
        "__str__",
        "state",
        "status",
        "status_reason",
        "config_version",
        "initiated_by",
        "created",
        "duration",
        "cancel_requested",
    )
    list_filter = (
        RunProgressFilter,
        "state",
        "status",
        "status_reason",
        ("namespace", admin.RelatedOnlyFieldListFilter),
        ("pipeline", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("pipeline",)
    search_fields = ("pipeline__slug", "namespace__id", "number__exact", "initiator__user")
    date_hierarchy = "created"
    show_full_result_count = False
    actions = ("cancel_runs",)
    fields = (
        "namespace",
        "pipeline",
        "number",
        "config",
        "config_version",
        "state",
        "status",
        "status_reason",
        "status_description",
        "initiator_display",
        "variables_display",
        "token",
        "store_objects_expired",
        "created",
        "started",
        "ended",
        "duration",
        "cancel_requested",
        "cancel_reason",
        "cancel_description",
    )
    readonly_fields = fields
    inlines = (TaskExecutionInline, TimelineInline)

    @admin.display(description="initiated by")
    def initiated_by(self, run: Run) -> str:
        initiator = run.initiator or {}
        return f"{initiator.get('user', '?')} ({initiator.get('kind', '?')})"

    @admin.display(description="initiator")
    def initiator_display(self, run: Run) -> str:
        return pretty_json(run.initiator)

    @admin.display(description="variables")
    def variables_display(self, run: Run) -> str:
        return _variables(run.variables)

    @admin.display(description="duration")
    def duration(self, run: Run) -> str:
        return _duration(run.started, run.ended)

    def has_cancel_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The API cancels a run with DELETE .../runs/{id}: the delete permission on runs.
        return self.allowed(request, Action.DELETE, obj)

    @admin.action(description="Cancel selected runs (cancel_run)", permissions=["cancel"])
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet) -> None:
        principal = principal_of(request)
        rows, outcome = self.split_allowed(request, queryset, Action.DELETE)
        apply_each(rows, lambda run: services.cancel_run(principal, run), outcome)
        report(self, request, outcome, verb="cancel", done="Asked to cancel", unchanged="already finished")


@admin.register(TaskExecution)
class TaskExecutionAdmin(NamespacedAdminMixin, admin.ModelAdmin):
    """Task executions: read-only (the engine owns state, container, digest and lease); cancel with the action."""

    scope_resources = TASK_EXECUTIONS
    list_display = (
        "__str__",
        "state",
        "status",
        "status_reason",
        "exit_code",
        "scheduler",
        "started",
        "duration",
        "cancel_requested",
    )
    list_filter = (
        "state",
        "status",
        "status_reason",
        "scheduler",
        "logs_expired",
        ("namespace", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("run__pipeline",)
    search_fields = ("task_slug", "run__pipeline__slug", "namespace__id", "container_id", "image_digest")
    date_hierarchy = "created"
    show_full_result_count = False
    actions = ("cancel_task_executions",)
    fields = (
        "namespace",
        "pipeline",
        "run",
        "task_slug",
        "task_display",
        "state",
        "status",
        "status_reason",
        "status_description",
        "exit_code",
        "variables_display",
        "created",
        "started",
        "ended",
        "duration",
        "scheduler",
        "container_id",
        "image_digest",
        "lease_owner",
        "lease_expires",
        "logs_expired",
        "logs_removed",
        "cancel_requested",
        "cancel_wait_for",
        "cancel_description",
        "stop_reason",
        "stop_signalled",
        "stop_deadline",
        "start_attempts",
    )
    readonly_fields = fields

    @admin.display(description="task (as the run started it)")
    def task_display(self, te: TaskExecution) -> str:
        task = dict(te.task or {})
        if task.get("registry_auth"):
            task["registry_auth"] = {"user": task["registry_auth"].get("user", ""), "pass": REDACTED}
        return pretty_json(task)

    @admin.display(description="variables")
    def variables_display(self, te: TaskExecution) -> str:
        return _variables(te.variables)

    @admin.display(description="duration")
    def duration(self, te: TaskExecution) -> str:
        return _duration(te.started, te.ended)

    def has_cancel_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request, Action.DELETE, obj)

    @admin.action(description="Cancel selected task executions (cancel_task_execution)", permissions=["cancel"])
    def cancel_task_executions(self, request: HttpRequest, queryset: QuerySet) -> None:
        principal = principal_of(request)
        rows, outcome = self.split_allowed(request, queryset.select_related("run__pipeline"), Action.DELETE)
        apply_each(rows, lambda te: services.cancel_task_execution(principal, te, None), outcome)
        report(self, request, outcome, verb="cancel", done="Asked to cancel", unchanged="already finished")


@admin.register(TimelineEntry)
class TimelineEntryAdmin(NamespacedAdminMixin, admin.ModelAdmin):
    """The orchestrator's own account of each run: read-only."""

    scope_resources = RUNS
    list_display = ("run", "at", "task_slug", "kind", "short_message")
    list_filter = ("kind",)
    list_select_related = ("run__pipeline",)
    search_fields = ("message", "kind", "task_slug", "run__pipeline__slug", "run__namespace__id")
    date_hierarchy = "at"
    show_full_result_count = False
    fields = ("run", "at", "task_slug", "kind", "message")
    readonly_fields = fields

    @admin.display(description="message")
    def short_message(self, entry: TimelineEntry) -> str:
        return entry.message if len(entry.message) <= 100 else entry.message[:97] + "..."
