"""Runs, task executions and timelines (Gofer v0 paths, plus the timeline)."""

from __future__ import annotations

from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response

from kernel.api.pagination import page_from, parse_bool, parse_int
from kernel.api.views import GoferAPIView, created, no_content, no_content_unchanged, ok, rule
from kernel.choices import Action, Resource
from runs import logs, services
from runs.api import serializers as s
from runs.models import Run, TaskExecution

RUNS = Resource.RUNS
TASKS = Resource.TASK_EXECUTIONS
MAX_WAIT_FOR = 3600


class RunListView(GoferAPIView):
    rules = {"GET": rule(Action.READ, RUNS, anonymous=True), "POST": rule(Action.WRITE, RUNS)}

    @extend_schema(
        operation_id="list_runs",
        parameters=[
            OpenApiParameter("limit", int, description="At most 500; default 50."),
            OpenApiParameter("offset", int),
            OpenApiParameter("reverse", bool, description="Newest first."),
        ],
        responses=s.ListRunsResponse,
        tags=["Runs"],
    )
    def get(self, request: Request, namespace_id: str, pipeline_id: str) -> Response:
        page = page_from(request)
        runs = page.apply(Run.objects.filter(pipeline=self.pipeline).select_related("pipeline"), "number")
        return ok({"runs": s.RunSerializer(runs, many=True, context={"principal": self.principal}).data})

    @extend_schema(operation_id="start_run", request=s.StartRunRequest, responses={201: s.RunResponse}, tags=["Runs"])
    def post(self, request: Request, namespace_id: str, pipeline_id: str) -> Response:
        body = self.known_fields(self.body(), {"variables"})
        run = services.start_run(self.principal, self.pipeline, body.get("variables"))
        return created({"run": s.RunSerializer(run).data})


class RunDetailView(GoferAPIView):
    rules = {"GET": rule(Action.READ, RUNS, anonymous=True), "DELETE": rule(Action.DELETE, RUNS)}

    @extend_schema(operation_id="get_run", responses=s.RunResponse, tags=["Runs"])
    def get(self, request: Request, namespace_id: str, pipeline_id: str, run_id: str) -> Response:
        run = services.get_run(self.pipeline, run_id)
        return ok({"run": s.RunSerializer(run, context={"principal": self.principal}).data})

    @extend_schema(operation_id="cancel_run", responses={204: None}, tags=["Runs"])
    def delete(self, request: Request, namespace_id: str, pipeline_id: str, run_id: str) -> Response:
        run = services.get_run(self.pipeline, run_id)
        if not services.cancel_run(self.principal, run):
            return no_content_unchanged()  # the run has already finished
        return no_content()


class RunTimelineView(GoferAPIView):
    rules = {"GET": rule(Action.READ, RUNS)}

    @extend_schema(operation_id="get_run_timeline", responses=s.TimelineResponse, tags=["Runs"])
    def get(self, request: Request, namespace_id: str, pipeline_id: str, run_id: str) -> Response:
        run = services.get_run(self.pipeline, run_id)
        page = page_from(request)
        entries = page.apply(run.timeline.all(), "id")
        return ok({"timeline": s.TimelineEntrySerializer(entries, many=True).data})


def _task_executions(run: Run):  # noqa: ANN202
    return TaskExecution.objects.filter(run=run).select_related("run", "pipeline")


class TaskExecutionListView(GoferAPIView):
    rules = {"GET": rule(Action.READ, RUNS, TASKS)}

    @extend_schema(operation_id="list_task_executions", responses=s.ListTaskExecutionsResponse, tags=["Tasks"])
    def get(self, request: Request, namespace_id: str, pipeline_id: str, run_id: str) -> Response:
        run = services.get_run(self.pipeline, run_id)
        page = page_from(request)
        task_executions = page.apply(_task_executions(run), "id")
        return ok({"task_executions": s.TaskExecutionSerializer(task_executions, many=True).data})


class TaskExecutionDetailView(GoferAPIView):
    rules = {"GET": rule(Action.READ, RUNS, TASKS), "DELETE": rule(Action.DELETE, RUNS, TASKS)}

    @extend_schema(operation_id="get_task_execution", responses=s.GetTaskExecutionResponse, tags=["Tasks"])
    def get(self, request: Request, namespace_id: str, pipeline_id: str, run_id: str, task_id: str) -> Response:
        run = services.get_run(self.pipeline, run_id)
        return ok({"task_execution": s.TaskExecutionSerializer(services.get_task_execution(run, task_id)).data})

    @extend_schema(
        operation_id="cancel_task_execution",
        parameters=[OpenApiParameter("wait_for", int, description="Seconds of graceful stop before SIGKILL; 0 kills.")],
        responses={204: None},
        tags=["Tasks"],
    )
    def delete(self, request: Request, namespace_id: str, pipeline_id: str, run_id: str, task_id: str) -> Response:
        run = services.get_run(self.pipeline, run_id)
        task_execution = services.get_task_execution(run, task_id)
        raw_wait = request.query_params.get("wait_for")
        wait_for = None if raw_wait in (None, "") else parse_int(raw_wait, "wait_for", 0, 0, MAX_WAIT_FOR)
        if not services.cancel_task_execution(self.principal, task_execution, wait_for):
            return no_content_unchanged()  # the task has already finished
        return no_content()


class _LogsNegotiation(DefaultContentNegotiation):
    """``format`` is this route's own parameter (raw or json). DRF would take it as its renderer override and answer
    404 to ``format=raw``; the logs are the view's own streamed response, and errors are always JSON."""

    def select_renderer(self, request: Request, renderers: list, format_suffix: str | None = None) -> tuple:
        return renderers[0], renderers[0].media_type


class TaskLogsView(GoferAPIView):
    """Plain-HTTP access to a task's logs. The same path as a websocket streams them live (runs/consumers.py)."""

    rules = {"GET": rule(Action.READ, RUNS, TASKS), "DELETE": rule(Action.DELETE, RUNS, TASKS)}
    content_negotiation_class = _LogsNegotiation

    @extend_schema(
        operation_id="get_logs",
        parameters=[
            OpenApiParameter("offset", int, description="First line number to return (from 0)."),
            OpenApiParameter("format", str, enum=["raw", "json"], description="raw text lines or JSON lines."),
            OpenApiParameter("follow", bool, description="Keep the response open until the task's logs end."),
        ],
        responses={(200, "text/plain"): str},
        tags=["Tasks"],
    )
    def get(self, request: Request, namespace_id: str, pipeline_id: str, run_id: str, task_id: str):  # noqa: ANN201
        run = services.get_run(self.pipeline, run_id)
        te = services.get_task_execution(run, task_id)
        offset = parse_int(request.query_params.get("offset"), "offset", 0, 0)
        fmt = logs.parse_format(request.query_params.get("format"))
        follow = parse_bool(request.query_params.get("follow"), "follow")
        services.check_logs_readable(te)
        content_type = "application/x-ndjson" if fmt == "json" else "text/plain; charset=utf-8"
        if isinstance(request._request, ASGIRequest):
            body: Any = logs.abody(te, offset, fmt, follow)
        else:
            body = logs.body(te, offset, fmt, follow)
        return StreamingHttpResponse(body, content_type=content_type)

    @extend_schema(operation_id="delete_logs", responses={204: None}, tags=["Tasks"])
    def delete(self, request: Request, namespace_id: str, pipeline_id: str, run_id: str, task_id: str) -> Response:
        run = services.get_run(self.pipeline, run_id)
        te = services.get_task_execution(run, task_id)
        if not services.delete_logs(te):
            return no_content_unchanged()  # the logs were already removed
        return no_content()
