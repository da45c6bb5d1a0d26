"""Wire shapes of runs, task executions and timelines (Gofer v0's field names, plus ours)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from kernel.api.serializers import EpochMsField, envelope
from pipelines.api.serializers import TaskSerializer, VariableSerializer
from pipelines.taskspec import TaskSpec
from runs.choices import VariableSource
from runs.models import Run, TaskExecution


def public_variables(variables: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Variables as clients may see them: system-injected ones (tokens, ids) are left out."""
    return [v for v in variables or [] if v.get("source") != VariableSource.SYSTEM]


def _reason(reason: str, description: str) -> dict[str, str] | None:
    if not reason:
        return None
    return {"reason": reason, "description": description}


class RunSerializer(serializers.Serializer):
    """A run. With ``context={"principal": ...}`` of an anonymous caller (readers of ``default`` without a token),
    the run's variables, its token id and its initiator's token id are left out (empty), so that anonymous readers
    never see values someone passed to a run nor ids that name tokens (issue 8)."""

    namespace_id = serializers.CharField()
    pipeline_id = serializers.SerializerMethodField()
    pipeline_config_version = serializers.IntegerField(source="config_version")
    run_id = serializers.IntegerField(source="number")
    queued = EpochMsField(source="created")
    started = EpochMsField()
    ended = EpochMsField()
    state = serializers.CharField()
    status = serializers.CharField()
    status_reason = serializers.SerializerMethodField()
    initiator = serializers.SerializerMethodField()
    variables = serializers.SerializerMethodField()
    token_id = serializers.SerializerMethodField()
    store_objects_expired = serializers.BooleanField()

    def get_pipeline_id(self, run: Run) -> str:
        return run.pipeline.slug

    def get_status_reason(self, run: Run) -> dict[str, str] | None:
        return _reason(run.status_reason, run.status_description)

    def _anonymous(self) -> bool:
        principal = self.context.get("principal")
        return principal is not None and principal.is_anonymous

    def get_initiator(self, run: Run) -> dict[str, str]:
        shown = {
            "id": "" if self._anonymous() else run.initiator.get("id", ""),
            "user": run.initiator.get("user", ""),
            "kind": run.initiator.get("kind", ""),
        }
        # A run started by a subscription says which (triggers): the extension and subscription ids.
        for key in ("extension_id", "subscription_id"):
            if run.initiator.get(key):
                shown[key] = run.initiator[key]
        return shown

    def get_variables(self, run: Run) -> list[dict[str, Any]]:
        if self._anonymous():
            return []
        return VariableSerializer(public_variables(run.variables), many=True).data

    def get_token_id(self, run: Run) -> str | None:
        if self._anonymous():
            return None
        return str(run.token_id) if run.token_id else None


class TaskExecutionSerializer(serializers.Serializer):
    namespace_id = serializers.CharField()
    pipeline_id = serializers.SerializerMethodField()
    run_id = serializers.SerializerMethodField()
    task_id = serializers.CharField(source="task_slug")
    task = serializers.SerializerMethodField()
    created = EpochMsField()
    started = EpochMsField()
    ended = EpochMsField()
    exit_code = serializers.IntegerField(allow_null=True)
    logs_expired = serializers.BooleanField()
    logs_removed = serializers.BooleanField()
    state = serializers.CharField()
    status = serializers.CharField()
    status_reason = serializers.SerializerMethodField()
    variables = serializers.SerializerMethodField()
    scheduler = serializers.CharField()
    container_id = serializers.CharField()
    image_digest = serializers.CharField()

    def get_pipeline_id(self, te: TaskExecution) -> str:
        return te.pipeline.slug

    def get_run_id(self, te: TaskExecution) -> int:
        return te.run.number

    @extend_schema_field(TaskSerializer)
    def get_task(self, te: TaskExecution) -> dict[str, Any]:
        return TaskSpec.from_snapshot(te.task).api()

    def get_status_reason(self, te: TaskExecution) -> dict[str, str] | None:
        return _reason(te.status_reason, te.status_description)

    def get_variables(self, te: TaskExecution) -> list[dict[str, Any]]:
        return VariableSerializer(public_variables(te.variables), many=True).data


class TimelineEntrySerializer(serializers.Serializer):
    at = EpochMsField()
    task_id = serializers.CharField(source="task_slug")
    kind = serializers.CharField()
    message = serializers.CharField()


class StartRunRequest(serializers.Serializer):
    variables = serializers.DictField(child=serializers.CharField(), required=False)


ListRunsResponse = envelope("ListRunsResponse", runs=RunSerializer(many=True))
RunResponse = envelope("RunResponse", run=RunSerializer())
ListTaskExecutionsResponse = envelope("ListTaskExecutionsResponse", task_executions=TaskExecutionSerializer(many=True))
GetTaskExecutionResponse = envelope("GetTaskExecutionResponse", task_execution=TaskExecutionSerializer())
TimelineResponse = envelope("TimelineResponse", timeline=TimelineEntrySerializer(many=True))
