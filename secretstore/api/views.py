"""Pipeline secrets and global secrets (Gofer v0 paths). Handlers parse, call a service, render.

Permissions: listing and metadata need read on secrets; a value (``include_secret=true``) needs write on secrets
too (checked by the service); putting needs write, deleting needs delete. Global secret routes are admin-only.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from kernel.api.pagination import page_from, parse_bool
from kernel.api.views import GoferAPIView, created, no_content, ok, rule
from kernel.choices import Action, Resource
from secretstore import services
from secretstore.api import serializers as s

SECRETS = Resource.SECRETS

PAGE_PARAMETERS = [
    OpenApiParameter("limit", int, description="At most 500; default 50."),
    OpenApiParameter("offset", int),
    OpenApiParameter("reverse", bool, description="Keys in descending order."),
]
INCLUDE_SECRET = OpenApiParameter(
    "include_secret",
    bool,
    description="Include the plaintext value. Pipeline secrets: needs write permission on secrets.",
)


def _include_secret(request: Request) -> bool:
    return parse_bool(request.query_params.get("include_secret"), "include_secret")


class PipelineSecretListView(GoferAPIView):
    rules = {"GET": rule(Action.READ, SECRETS), "POST": rule(Action.WRITE, SECRETS)}

    @extend_schema(
        operation_id="list_pipeline_secrets",
        parameters=PAGE_PARAMETERS,
        responses=s.ListPipelineSecretsResponse,
        tags=["Secrets"],
    )
    def get(self, request: Request, namespace_id: str, pipeline_id: str) -> Response:
        page = page_from(request)
        secrets = page.apply(services.pipeline_secrets(self.pipeline), "key")
        return ok({"secrets": s.PipelineSecretSerializer(secrets, many=True).data})

    @extend_schema(
        operation_id="put_pipeline_secret",
        request=s.PutPipelineSecretRequest,
        responses={201: s.PutPipelineSecretResponse},
        tags=["Secrets"],
    )
    def post(self, request: Request, namespace_id: str, pipeline_id: str) -> Response:
        body = self.known_fields(self.body(), {"key", "content", "force"})
        secret = services.put_pipeline_secret(self.pipeline, body.get("key"), body.get("content"), body.get("force"))
        return created({"secret": s.PipelineSecretSerializer(secret).data})


class PipelineSecretDetailView(GoferAPIView):
    rules = {"GET": rule(Action.READ, SECRETS), "DELETE": rule(Action.DELETE, SECRETS)}

    @extend_schema(
        operation_id="get_pipeline_secret",
        parameters=[INCLUDE_SECRET],
        responses=s.GetPipelineSecretResponse,
        tags=["Secrets"],
    )
    def get(self, request: Request, namespace_id: str, pipeline_id: str, key: str) -> Response:
        if _include_secret(request):
            secret, value = services.reveal_pipeline_secret(self.principal, self.pipeline, key)
            return ok({"metadata": s.PipelineSecretSerializer(secret).data, "secret": value})
        secret = services.get_pipeline_secret(self.pipeline, key)
        return ok({"metadata": s.PipelineSecretSerializer(secret).data})

    @extend_schema(operation_id="delete_pipeline_secret", responses={204: None}, tags=["Secrets"])
    def delete(self, request: Request, namespace_id: str, pipeline_id: str, key: str) -> Response:
        services.delete_pipeline_secret(self.pipeline, key)
        return no_content()


class GlobalSecretListView(GoferAPIView):
    rules = {"GET": rule(Action.READ, SECRETS, admin=True), "POST": rule(Action.WRITE, SECRETS, admin=True)}

    @extend_schema(
        operation_id="list_global_secrets",
        parameters=PAGE_PARAMETERS,
        responses=s.ListGlobalSecretsResponse,
        tags=["Secrets"],
    )
    def get(self, request: Request) -> Response:
        page = page_from(request)
        secrets = page.apply(services.global_secrets(), "key")
        return ok({"secrets": s.GlobalSecretSerializer(secrets, many=True).data})

    @extend_schema(
        operation_id="put_global_secret",
        request=s.PutGlobalSecretRequest,
        responses={201: s.PutGlobalSecretResponse},
        tags=["Secrets"],
    )
    def post(self, request: Request) -> Response:
        body = self.known_fields(self.body(), {"key", "content", "namespaces", "force"})
        secret = services.put_global_secret(
            body.get("key"), body.get("content"), body.get("namespaces"), body.get("force")
        )
        return created({"secret": s.GlobalSecretSerializer(secret).data})


class GlobalSecretDetailView(GoferAPIView):
    rules = {"GET": rule(Action.READ, SECRETS, admin=True), "DELETE": rule(Action.DELETE, SECRETS, admin=True)}

    @extend_schema(
        operation_id="get_global_secret",
        parameters=[INCLUDE_SECRET],
        responses=s.GetGlobalSecretResponse,
        tags=["Secrets"],
    )
    def get(self, request: Request, key: str) -> Response:
        if _include_secret(request):
            secret, value = services.reveal_global_secret(key)
            return ok({"metadata": s.GlobalSecretSerializer(secret).data, "secret": value})
        secret = services.get_global_secret(key)
        return ok({"metadata": s.GlobalSecretSerializer(secret).data})

    @extend_schema(operation_id="delete_global_secret", responses={204: None}, tags=["Secrets"])
    def delete(self, request: Request, key: str) -> Response:
        services.delete_global_secret(key)
        return no_content()
