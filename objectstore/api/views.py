"""Pipeline, run and extension objects (Gofer v0 paths). Handlers parse, call a service, render.

Uploads are the raw request body (``application/octet-stream``), streamed to the store; downloads are the raw bytes,
streamed back (objectstore/api/streaming.py). ``GoferAPIView.body()`` and ``request.data`` are never used here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, NoReturn

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from kernel.api.pagination import page_from, parse_bool
from kernel.api.views import GoferAPIView, created, no_content, ok, rule
from kernel.choices import Action, Resource
from objectstore import services
from objectstore.api import serializers as s
from objectstore.api.streaming import OCTET_STREAM, StreamedBodyParser, download_response, head_response, upload_of
from runs import services as runs

OBJECTS = Resource.OBJECTS
EXTENSIONS = Resource.EXTENSIONS
TAGS = ["Objects"]
PAGE_PARAMETERS = [
    OpenApiParameter("limit", int, description="At most 500; default 50."),
    OpenApiParameter("offset", int),
    OpenApiParameter("reverse", bool, description="Newest first."),
]
FORCE = OpenApiParameter("force", bool, description="Overwrite the object if the key exists (409 otherwise).")
RAW_BODY = {OCTET_STREAM: OpenApiTypes.BINARY}
RAW_RESPONSE = {(200, OCTET_STREAM): OpenApiResponse(OpenApiTypes.BINARY, description="The object's bytes.")}


class ObjectsView(GoferAPIView):
    # The base of the object routes (a comment, not a docstring: the schema would show it on every route). Raw
    # bodies only: DRF must never parse, and so buffer, an upload.

    parser_classes: ClassVar[list] = [StreamedBodyParser]
    body_limit: ClassVar[tuple[str, str]] = ("GOFER_OBJECT_MAX_BYTES", "GOFER_OBJECT_MAX_BYTES")

    def body(self) -> NoReturn:
        raise RuntimeError("object routes stream the raw body (objectstore.api.streaming.upload_of)")

    def store_upload(self, request: Request, put: Callable[..., Any], target: Any, key: str) -> Response:
        """Stream the request body into ``put(target, key, chunks, force=, content_length=)``; 201 with the object."""
        force = parse_bool(request.query_params.get("force"), "force")
        chunks, content_length = upload_of(request)
        stored = put(target, key, chunks, force=force, content_length=content_length)
        return created({"object": s.ObjectSerializer(stored).data})

    def objects_page(self, request: Request, queryset: Any) -> Response:
        page = page_from(request)
        return ok({"objects": s.ObjectSerializer(page.apply(queryset, "created", "id"), many=True).data})


# --- pipeline objects -----------------------------------------------------------------------------------------------


class PipelineObjectListView(ObjectsView):
    """A pipeline's objects: keys and when each was stored, least recently stored first."""

    rules = {"GET": rule(Action.READ, OBJECTS)}

    @extend_schema(
        operation_id="list_pipeline_objects",
        parameters=PAGE_PARAMETERS,
        responses=s.ListPipelineObjectsResponse,
        tags=TAGS,
    )
    def get(self, request: Request, namespace_id: str, pipeline_id: str) -> Response:
        return self.objects_page(request, services.list_pipeline_objects(self.pipeline))


class PipelineObjectDetailView(ObjectsView):
    """One pipeline object: its bytes (GET), store the raw request body under the key (POST), delete it."""

    rules = {
        "GET": rule(Action.READ, OBJECTS),
        "POST": rule(Action.WRITE, OBJECTS),
        "DELETE": rule(Action.DELETE, OBJECTS),
    }

    @extend_schema(operation_id="get_pipeline_object", responses=RAW_RESPONSE, tags=TAGS)
    def get(self, request: Request, namespace_id: str, pipeline_id: str, key: str) -> HttpResponse:
        return download_response(request, services.open_pipeline_object(self.pipeline, key))

    def head(self, request: Request, namespace_id: str, pipeline_id: str, key: str) -> HttpResponse:
        return head_response(services.open_pipeline_object(self.pipeline, key))

    @extend_schema(
        operation_id="put_pipeline_object",
        parameters=[FORCE],
        request=RAW_BODY,
        responses={201: s.PutPipelineObjectResponse},
        tags=TAGS,
    )
    def post(self, request: Request, namespace_id: str, pipeline_id: str, key: str) -> Response:
        return self.store_upload(request, services.put_pipeline_object, self.pipeline, key)

    @extend_schema(operation_id="delete_pipeline_object", responses={204: None}, tags=TAGS)
    def delete(self, request: Request, namespace_id: str, pipeline_id: str, key: str) -> Response:
        services.delete_pipeline_object(self.pipeline, key)
        return no_content()


# --- run objects ----------------------------------------------------------------------------------------------------


class RunObjectListView(ObjectsView):
    """A run's objects (410 once they expired: only the newest GOFER_RUN_OBJECT_EXPIRY runs keep objects)."""

    rules = {"GET": rule(Action.READ, OBJECTS)}

    @extend_schema(
        operation_id="list_run_objects", parameters=PAGE_PARAMETERS, responses=s.ListRunObjectsResponse, tags=TAGS
    )
    def get(self, request: Request, namespace_id: str, pipeline_id: str, run_id: str) -> Response:
        run = runs.get_run(self.pipeline, run_id)
        return self.objects_page(request, services.list_run_objects(run))


class RunObjectDetailView(ObjectsView):
    """One run object: its bytes (GET), store the raw request body under the key (POST), delete it."""

    rules = {
        "GET": rule(Action.READ, OBJECTS),
        "POST": rule(Action.WRITE, OBJECTS),
        "DELETE": rule(Action.DELETE, OBJECTS),
    }

    @extend_schema(operation_id="get_run_object", responses=RAW_RESPONSE, tags=TAGS)
    def get(self, request: Request, namespace_id: str, pipeline_id: str, run_id: str, key: str) -> HttpResponse:
        run = runs.get_run(self.pipeline, run_id)
        return download_response(request, services.open_run_object(run, key))

    def head(self, request: Request, namespace_id: str, pipeline_id: str, run_id: str, key: str) -> HttpResponse:
        run = runs.get_run(self.pipeline, run_id)
        return head_response(services.open_run_object(run, key))

    @extend_schema(
        operation_id="put_run_object",
        parameters=[FORCE],
        request=RAW_BODY,
        responses={201: s.PutRunObjectResponse},
        tags=TAGS,
    )
    def post(self, request: Request, namespace_id: str, pipeline_id: str, run_id: str, key: str) -> Response:
        return self.store_upload(request, services.put_run_object, runs.get_run(self.pipeline, run_id), key)

    @extend_schema(operation_id="delete_run_object", responses={204: None}, tags=TAGS)
    def delete(self, request: Request, namespace_id: str, pipeline_id: str, run_id: str, key: str) -> Response:
        services.delete_run_object(runs.get_run(self.pipeline, run_id), key)
        return no_content()


# --- extension objects ----------------------------------------------------------------------------------------------
# The gate checks that the caller has ``objects`` with *some* ``extensions`` permission; each handler then checks the
# targeted permission (``extensions:<regex>`` matching this extension id), which the gate cannot express for routes
# outside a namespace. The extension id is not checked against a registry yet: there is none.


class ExtensionObjectListView(ObjectsView):
    """An extension's private objects (needs `objects` with `extensions:<regex>` matching the id)."""

    rules = {"GET": rule(Action.READ, EXTENSIONS, OBJECTS)}

    @extend_schema(
        operation_id="list_extension_objects",
        parameters=PAGE_PARAMETERS,
        responses=s.ListExtensionObjectsResponse,
        tags=TAGS,
    )
    def get(self, request: Request, extension_id: str) -> Response:
        extension_id = services.check_extension_access(self.principal, extension_id, Action.READ)
        return self.objects_page(request, services.list_extension_objects(extension_id))


class ExtensionObjectDetailView(ObjectsView):
    """One extension object: its bytes (GET), store the raw request body under the key (POST), delete it."""

    rules = {
        "GET": rule(Action.READ, EXTENSIONS, OBJECTS),
        "POST": rule(Action.WRITE, EXTENSIONS, OBJECTS),
        "DELETE": rule(Action.DELETE, EXTENSIONS, OBJECTS),
    }

    @extend_schema(operation_id="get_extension_object", responses=RAW_RESPONSE, tags=TAGS)
    def get(self, request: Request, extension_id: str, key: str) -> HttpResponse:
        extension_id = services.check_extension_access(self.principal, extension_id, Action.READ)
        return download_response(request, services.open_extension_object(extension_id, key))

    def head(self, request: Request, extension_id: str, key: str) -> HttpResponse:
        extension_id = services.check_extension_access(self.principal, extension_id, Action.READ)
        return head_response(services.open_extension_object(extension_id, key))

    @extend_schema(
        operation_id="put_extension_object",
        parameters=[FORCE],
        request=RAW_BODY,
        responses={201: s.PutExtensionObjectResponse},
        tags=TAGS,
    )
    def post(self, request: Request, extension_id: str, key: str) -> Response:
        extension_id = services.check_extension_access(self.principal, extension_id, Action.WRITE)
        return self.store_upload(request, services.put_extension_object, extension_id, key)

    @extend_schema(operation_id="delete_extension_object", responses={204: None}, tags=TAGS)
    def delete(self, request: Request, extension_id: str, key: str) -> Response:
        extension_id = services.check_extension_access(self.principal, extension_id, Action.DELETE)
        services.delete_extension_object(extension_id, key)
        return no_content()
