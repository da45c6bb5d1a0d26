"""Wire shapes of namespaces, pipelines, configs and deployments (Gofer v0's field names)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apiv0.serializers import EpochMsField, envelope
from events.models import Event
from events.services import as_api as event_as_api
from pipelines.models import Deployment, PipelineConfig, Task

REDACTED = "[redacted]"


class NamespaceSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
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


class TaskSerializer(serializers.Serializer):
    id = serializers.CharField(source="slug")
    description = serializers.CharField()
    image = serializers.CharField()
    registry_auth = serializers.SerializerMethodField()
    depends_on = serializers.DictField(child=serializers.CharField())
    variables = serializers.SerializerMethodField()
    entrypoint = serializers.ListField(child=serializers.CharField(), allow_null=True)
    command = serializers.ListField(child=serializers.CharField(), allow_null=True)
    inject_api_token = serializers.BooleanField()
    always_pull_newest_image = serializers.BooleanField()
    timeout = serializers.IntegerField()
    cpu = serializers.FloatField(allow_null=True)
    memory = serializers.IntegerField(allow_null=True)
    logging = serializers.BooleanField()

    def get_registry_auth(self, task: Task) -> dict[str, str] | None:
        if not task.registry_auth:
            return None
        return {"user": task.registry_auth.get("user", ""), "pass": REDACTED}

    def get_variables(self, task: Task) -> list[dict[str, str]]:
        return [{"key": v["key"], "value": v["value"], "source": "pipeline_config"} for v in task.variables]


class ConfigSerializer(serializers.Serializer):
    namespace_id = serializers.CharField()
    pipeline_id = serializers.SerializerMethodField()
    version = serializers.IntegerField()
    parallelism = serializers.IntegerField()
    parallelism_mode = serializers.CharField()
    logging = serializers.BooleanField()
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


class UpdatePipelineRequest(serializers.Serializer):
    state = serializers.ChoiceField(choices=["active", "disabled"])


class RegisterPipelineConfigRequest(serializers.Serializer):
    config = serializers.JSONField(help_text="A pipeline config as Gofer's SDKs print it (id, name, tasks, ...).")


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
