"""Namespaces, pipelines, configs and deployments (Gofer v0 paths). Handlers parse, call a service, render."""

from __future__ import annotations

from typing import ClassVar

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from kernel import scope
from kernel.api.pagination import page_from
from kernel.api.views import (
    GoferAPIView,
    created,
    created_unchanged,
    no_content,
    no_content_unchanged,
    ok,
    rule,
    unchanged,
)
from kernel.choices import Action, Resource
from pipelines import quotas, services
from pipelines.api import serializers as s
from pipelines.models import Deployment, Namespace, PipelineConfig

NS = Resource.NAMESPACES
PIPELINES = Resource.PIPELINES
CONFIGS = Resource.CONFIGS
DEPLOYMENTS = Resource.DEPLOYMENTS


class NamespaceListView(GoferAPIView):
    rules = {"GET": rule(Action.READ, NS), "POST": rule(Action.WRITE, NS, admin=True)}

    @extend_schema(operation_id="list_namespaces", responses=s.ListNamespacesResponse, tags=["Namespaces"])
    def get(self, request: Request) -> Response:
        page = page_from(request)
        namespaces = page.apply(scope.restrict(Namespace.objects.all(), self.principal, Action.READ), "id")
        return ok({"namespaces": s.NamespaceSerializer(namespaces, many=True).data})

    @extend_schema(
        operation_id="create_namespace",
        request=s.CreateNamespaceRequest,
        responses={201: s.NamespaceResponse},
        tags=["Namespaces"],
    )
    def post(self, request: Request) -> Response:
        body = self.known_fields(self.body(), {"id", "name", "description"})
        namespace = services.create_namespace(body.get("id"), body.get("name"), body.get("description"))
        return created({"namespace": s.NamespaceSerializer(namespace).data})


class NamespaceDetailView(GoferAPIView):
    rules = {
        "GET": rule(Action.READ, anonymous=True),
        "PATCH": rule(Action.WRITE, admin=True),
        "DELETE": rule(Action.DELETE, admin=True),
    }

    @extend_schema(operation_id="get_namespace", responses=s.NamespaceResponse, tags=["Namespaces"])
    def get(self, request: Request, namespace_id: str) -> Response:
        return ok({"namespace": s.NamespaceSerializer(self.namespace).data})

    @extend_schema(
        operation_id="update_namespace",
        request=s.UpdateNamespaceRequest,
        responses={200: s.NamespaceResponse},
        tags=["Namespaces"],
    )
    def patch(self, request: Request, namespace_id: str) -> Response:
        body = self.known_fields(self.body(), {"name", "description", "allow_attach"})
        changed = services.update_namespace(
            self.namespace, body.get("name"), body.get("description"), body.get("allow_attach")
        )
        payload = {"namespace": s.NamespaceSerializer(self.namespace).data}
        if not changed:
            return unchanged("nothing changed: the namespace already has these values", payload)
        return ok(payload)

    @extend_schema(operation_id="delete_namespace", responses={204: None}, tags=["Namespaces"])
    def delete(self, request: Request, namespace_id: str) -> Response:
        services.delete_namespace(self.namespace)
        return no_content()


class NamespaceQuotasView(GoferAPIView):
    """Our addition, in the v0 style: a namespace's quotas with their current use (pipelines/quotas.py)."""

    rules = {"GET": rule(Action.READ), "PUT": rule(Action.WRITE, admin=True)}
    http_method_names: ClassVar[list[str]] = ["get", "put", "head"]

    @extend_schema(operation_id="get_namespace_quotas", responses=s.NamespaceQuotasResponse, tags=["Namespaces"])
    def get(self, request: Request, namespace_id: str) -> Response:
        return ok({"quotas": s.quotas_as_api(quotas.quotas_of(self.namespace.id))})

    @extend_schema(
        operation_id="update_namespace_quotas",
        request=s.UpdateNamespaceQuotasRequest,
        responses={200: s.NamespaceQuotasResponse},
        tags=["Namespaces"],
    )
    def put(self, request: Request, namespace_id: str) -> Response:
        row, changed = quotas.update_quotas(self.namespace, self.body())
        payload = {"quotas": s.quotas_as_api(row)}
        if not changed:
            return unchanged("nothing changed: the namespace already has these quotas", payload)
        return ok(payload)


class PipelineListView(GoferAPIView):
    rules = {"GET": rule(Action.READ, PIPELINES, anonymous=True)}

    @extend_schema(operation_id="list_pipelines", responses=s.ListPipelinesResponse, tags=["Pipelines"])
    def get(self, request: Request, namespace_id: str) -> Response:
        page = page_from(request)
        pipelines = page.apply(scope.restrict(self.namespace.pipelines.all(), self.principal, Action.READ), "slug")
        return ok({"pipelines": s.PipelineMetadataSerializer(pipelines, many=True).data})


class PipelineDetailView(GoferAPIView):
    rules = {
        "GET": rule(Action.READ, anonymous=True),
        "PATCH": rule(Action.WRITE),
        "DELETE": rule(Action.DELETE),
    }

    @extend_schema(operation_id="get_pipeline", responses=s.GetPipelineResponse, tags=["Pipelines"])
    def get(self, request: Request, namespace_id: str, pipeline_id: str) -> Response:
        return ok({"pipeline": s.PipelineMetadataSerializer(self.pipeline).data})

    @extend_schema(
        operation_id="update_pipeline",
        request=s.UpdatePipelineRequest,
        responses={204: None},
        tags=["Pipelines"],
    )
    def patch(self, request: Request, namespace_id: str, pipeline_id: str) -> Response:
        body = self.known_fields(self.body(), {"state"})
        if "state" not in body:
            return no_content_unchanged()  # no field to update was given
        if not services.set_pipeline_state(self.pipeline, body["state"]):
            return no_content_unchanged()  # the pipeline is already in that state
        return no_content()

    @extend_schema(operation_id="delete_pipeline", responses={204: None}, tags=["Pipelines"])
    def delete(self, request: Request, namespace_id: str, pipeline_id: str) -> Response:
        services.delete_pipeline(self.pipeline)
        return no_content()


def _configs(pipeline):  # noqa: ANN001, ANN202 - small local helper
    return PipelineConfig.objects.filter(pipeline=pipeline).select_related("pipeline").prefetch_related("tasks")


class ConfigListView(GoferAPIView):
    rules = {"GET": rule(Action.READ, CONFIGS), "POST": rule(Action.WRITE, CONFIGS, may_create_pipeline=True)}

    @extend_schema(operation_id="list_configs", responses=s.ListPipelineConfigsResponse, tags=["Configs"])
    def get(self, request: Request, namespace_id: str, pipeline_id: str) -> Response:
        page = page_from(request)
        configs = page.apply(_configs(self.pipeline), "version")
        return ok({"configs": s.ConfigSerializer(configs, many=True).data})

    @extend_schema(
        operation_id="register_config",
        request=s.RegisterPipelineConfigRequest,
        responses={201: s.RegisterPipelineConfigResponse},
        tags=["Configs"],
    )
    def post(self, request: Request, namespace_id: str, pipeline_id: str) -> Response:
        body = self.known_fields(self.body(), {"config"})
        pipeline, config = services.register_config(self.namespace, pipeline_id, body.get("config"), self.principal)
        config = _configs(pipeline).get(pk=config.pk)
        return created(
            {
                "pipeline": {
                    "metadata": s.PipelineMetadataSerializer(pipeline).data,
                    "config": s.ConfigSerializer(config).data,
                }
            }
        )


class ConfigDetailView(GoferAPIView):
    rules = {
        "GET": rule(Action.READ, CONFIGS),
        "POST": rule(Action.WRITE, CONFIGS, DEPLOYMENTS),
        "DELETE": rule(Action.DELETE, CONFIGS),
    }

    @extend_schema(operation_id="get_config", responses=s.GetPipelineConfigResponse, tags=["Configs"])
    def get(self, request: Request, namespace_id: str, pipeline_id: str, version: str) -> Response:
        config = services.get_config(self.pipeline, services.parse_version(version))
        return ok({"config": s.ConfigSerializer(config).data})

    @extend_schema(
        operation_id="deploy_config",
        request=None,
        responses={201: s.DeploymentResponse},
        tags=["Configs"],
    )
    def post(self, request: Request, namespace_id: str, pipeline_id: str, version: str) -> Response:
        deployment, changed = services.deploy_config(self.pipeline, services.parse_version(version))
        payload = {"deployment": s.DeploymentSerializer(deployment).data}
        if not changed:
            return created_unchanged(f"nothing changed: version {deployment.end_version} is already live", payload)
        return created(payload)

    @extend_schema(operation_id="delete_config", responses={204: None}, tags=["Configs"])
    def delete(self, request: Request, namespace_id: str, pipeline_id: str, version: str) -> Response:
        services.delete_config(self.pipeline, services.parse_version(version, allow_latest=False))
        return no_content()


class DeploymentListView(GoferAPIView):
    rules = {"GET": rule(Action.READ, DEPLOYMENTS)}

    @extend_schema(operation_id="list_deployments", responses=s.ListDeploymentsResponse, tags=["Deployments"])
    def get(self, request: Request, namespace_id: str, pipeline_id: str) -> Response:
        page = page_from(request)
        deployments = page.apply(Deployment.objects.filter(pipeline=self.pipeline).select_related("pipeline"), "number")
        return ok({"deployments": s.DeploymentSerializer(deployments, many=True).data})


class DeploymentDetailView(GoferAPIView):
    rules = {"GET": rule(Action.READ, DEPLOYMENTS)}

    @extend_schema(operation_id="get_deployment", responses=s.DeploymentResponse, tags=["Deployments"])
    def get(self, request: Request, namespace_id: str, pipeline_id: str, deployment_id: str) -> Response:
        deployment = services.get_deployment(self.pipeline, deployment_id)
        return ok({"deployment": s.DeploymentSerializer(deployment).data})
