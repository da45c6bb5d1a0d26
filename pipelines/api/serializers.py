"""Wire shapes of namespaces, pipelines, configs and deployments (Gofer v0's field names)."""

from __future__ import annotations

import typing
from decimal import Decimal
from typing import Any

from rest_framework import serializers

from events.models import Event
from events.services import as_api as event_as_api
from kernel.api.serializers import EpochMsField, envelope
from kernel.times import epoch_ms
from pipelines import quotas
from pipelines.models import Deployment, NamespaceQuotas, PipelineConfig, Task
from pipelines.taskspec import TaskSpec


class NamespaceSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    allow_attach = serializers.BooleanField(help_text="False: nobody may attach to a task in this namespace.")
    created = EpochMsField()
    modified = EpochMsField()


class PipelineMetadataSerializer(serializers.Serializer):
    namespace_id = serializers.CharField()
    pipeline_id = serializers.CharField(source="slug")
    state = serializers.CharField()
    created = EpochMsField()
    modified = EpochMsField()


class VariableSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.CharField()
    source = serializers.CharField()


def _api_field(name: str, annotation: Any) -> serializers.Field:
    """The serializer field (for the OpenAPI schema) of a task spec field, from its type."""
    nullable = type(None) in typing.get_args(annotation)
    base = next((a for a in typing.get_args(annotation) if a is not type(None)), annotation)
    origin = typing.get_origin(base) or base
    if name == "variables":
        return VariableSerializer(many=True)
    if origin is bool:
        return serializers.BooleanField()
    if origin is int:
        return serializers.IntegerField(allow_null=nullable)
    if origin is Decimal:
        return serializers.FloatField(allow_null=nullable)
    if origin is list:
        return serializers.ListField(child=serializers.CharField(), allow_null=nullable)
    if origin is dict:
        return serializers.DictField(child=serializers.CharField(), allow_null=nullable)
    return serializers.CharField(allow_null=nullable)


class TaskSerializer(serializers.Serializer):
    """Gofer v0's Task: the task spec's API form (pipelines/taskspec.py), the registry password redacted. Its
    fields are generated from the spec, for the OpenAPI schema."""

    def get_fields(self) -> dict[str, serializers.Field]:
        hints = typing.get_type_hints(TaskSpec)
        return {name: _api_field(name, hints[name]) for name, _ in TaskSpec.fields()}

    def to_representation(self, task: Task | TaskSpec) -> dict[str, Any]:
        return (task if isinstance(task, TaskSpec) else task.spec).api()


class RunTokenGrantSerializer(serializers.Serializer):
    resources = serializers.ListField(child=serializers.CharField())
    actions = serializers.ListField(child=serializers.ChoiceField(choices=["read", "write", "delete"]))


class ConfigSerializer(serializers.Serializer):
    namespace_id = serializers.CharField()
    pipeline_id = serializers.SerializerMethodField()
    version = serializers.IntegerField()
    parallelism = serializers.IntegerField()
    parallelism_mode = serializers.CharField()
    logging = serializers.BooleanField()
    run_token_grants = RunTokenGrantSerializer(
        many=True, help_text="What this version's run tokens may do beyond the default (docs/security.md)."
    )
    name = serializers.CharField()
    description = serializers.CharField()
    registered = EpochMsField()
    deprecated = EpochMsField()
    state = serializers.CharField()
    tasks = serializers.SerializerMethodField()

    def get_pipeline_id(self, config: PipelineConfig) -> str:
        return config.pipeline.slug

    def get_tasks(self, config: PipelineConfig) -> dict[str, Any]:
        return {task.slug: TaskSerializer(task).data for task in config.tasks.all()}


class DeploymentSerializer(serializers.Serializer):
    namespace_id = serializers.CharField()
    pipeline_id = serializers.SerializerMethodField()
    deployment_id = serializers.IntegerField(source="number")
    start_version = serializers.IntegerField()
    end_version = serializers.IntegerField()
    started = EpochMsField()
    ended = EpochMsField()
    state = serializers.CharField()
    status = serializers.CharField()
    status_reason = serializers.JSONField()
    logs = serializers.SerializerMethodField()

    def get_pipeline_id(self, deployment: Deployment) -> str:
        return deployment.pipeline.slug

    def get_logs(self, deployment: Deployment) -> list[dict[str, Any]]:
        by_id = {e.id: e for e in Event.objects.filter(id__in=deployment.logs or [])}
        return [event_as_api(by_id[i]) for i in deployment.logs or [] if i in by_id]


class CreateNamespaceRequest(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField(required=False, allow_blank=True)


class UpdateNamespaceRequest(serializers.Serializer):
    name = serializers.CharField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    allow_attach = serializers.BooleanField(required=False)


class UpdatePipelineRequest(serializers.Serializer):
    state = serializers.ChoiceField(choices=["active", "disabled"])


class RegisterPipelineConfigRequest(serializers.Serializer):
    config = serializers.JSONField(help_text="A pipeline config as Gofer's SDKs print it (id, name, tasks, ...).")


class QuotaUseSerializer(serializers.Serializer):
    limit = serializers.IntegerField(allow_null=True, help_text="null: no limit.")
    used = serializers.IntegerField(help_text="The current use (for ceilings, the largest value in use).")
    unit = serializers.CharField()


def _quota_fields() -> dict[str, serializers.Field]:
    fields: dict[str, serializers.Field] = {
        "namespace_id": serializers.CharField(),
        "weight": serializers.IntegerField(help_text="Share of the server's run slots (fair scheduling)."),
        "modified": EpochMsField(),
    }
    fields.update({q.name: QuotaUseSerializer(help_text=q.description) for q in quotas.QUOTAS})
    return fields


NamespaceQuotasSerializer = type("NamespaceQuotas", (serializers.Serializer,), _quota_fields())


def quotas_as_api(row: NamespaceQuotas) -> dict[str, Any]:
    """GET .../quotas: each quota's limit and current use, and the namespace's weight."""
    use = quotas.usage(row.namespace_id)
    out: dict[str, Any] = {"namespace_id": row.namespace_id, "weight": row.weight, "modified": epoch_ms(row.modified)}
    for quota in quotas.QUOTAS:
        out[quota.name] = {"limit": getattr(row, quota.name), "used": use[quota.name], "unit": quota.unit}
    return out


UpdateNamespaceQuotasRequest = type(
    "UpdateNamespaceQuotasRequest",
    (serializers.Serializer,),
    {
        "weight": serializers.IntegerField(required=False, min_value=1, max_value=quotas.MAX_WEIGHT),
        **{
            q.name: serializers.IntegerField(required=False, allow_null=True, min_value=0, help_text=q.description)
            for q in quotas.QUOTAS
        },
    },
)

ListNamespacesResponse = envelope("ListNamespacesResponse", namespaces=NamespaceSerializer(many=True))
NamespaceResponse = envelope("NamespaceResponse", namespace=NamespaceSerializer())
ListPipelinesResponse = envelope("ListPipelinesResponse", pipelines=PipelineMetadataSerializer(many=True))
GetPipelineResponse = envelope("GetPipelineResponse", pipeline=PipelineMetadataSerializer())
ListPipelineConfigsResponse = envelope("ListPipelineConfigsResponse", configs=ConfigSerializer(many=True))
GetPipelineConfigResponse = envelope("GetPipelineConfigResponse", config=ConfigSerializer())
PipelineWithConfig = envelope("Pipeline", metadata=PipelineMetadataSerializer(), config=ConfigSerializer())
RegisterPipelineConfigResponse = envelope("RegisterPipelineConfigResponse", pipeline=PipelineWithConfig())
ListDeploymentsResponse = envelope("ListDeploymentsResponse", deployments=DeploymentSerializer(many=True))
DeploymentResponse = envelope("DeploymentResponse", deployment=DeploymentSerializer())
NamespaceQuotasResponse = envelope("NamespaceQuotasResponse", quotas=NamespaceQuotasSerializer())
