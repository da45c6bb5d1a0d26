"""Traces, against the SDK's in-memory exporter: the request that starts a run is the parent of the run's span;
the run's span of its task executions' spans; each task execution has its phases (queue wait, container start,
running, log drain), all in one trace, across worker steps. And metrics: runs by status, task durations,
admission waits, the database gauges."""

from __future__ import annotations

from opentelemetry.trace import SpanKind
from rest_framework.test import APIClient

from runs.models import Run
from telemetry import metrics, otel, tracing
from tests.support.engine import pipeline_with, sh


def _run_pipeline(alice, memory_engine):
    pipeline_with(
        [
            sh("compile", "busybox:latest", "echo compiling"),
            sh("test", "busybox:latest", "echo testing", depends_on={"compile": "success"}),
        ],
        pipeline_id="build",
    )
    alice.client = APIClient()  # a new handler: its middleware includes the instrumentation installed now
    response = alice.post("/api/namespaces/team-a/pipelines/build/runs", {"variables": {}})
    assert response.status_code == 201, response.content
    run = Run.objects.get(namespace_id="team-a", number=response.json()["run"]["run_id"])
    memory_engine.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete")
    return Run.objects.get(pk=run.pk)


def test_the_request_that_starts_a_run_is_the_parent_of_the_run_and_its_tasks_phases(
    telemetry_memory, alice, memory_engine
):
    spans, _ = telemetry_memory
    run = _run_pipeline(alice, memory_engine)
    assert run.status == "successful"
    finished = spans.get_finished_spans()
    requests = [s for s in finished if s.kind == SpanKind.SERVER and s.attributes.get("http.method") == "POST"]
    assert len(requests) == 1
    request = requests[0]
    assert run.trace_context == {
        "trace_id": f"{request.context.trace_id:032x}",
        "parent_span_id": f"{request.context.span_id:016x}",
    }
    by_name = {}
    for span in finished:
        by_name.setdefault(span.name, []).append(span)
    (run_span,) = by_name["run"]
    assert run_span.parent.span_id == request.context.span_id
    assert run_span.context.trace_id == request.context.trace_id
    assert run_span.context.span_id == tracing.run_span_id(run.trace_context, run.pk)
    assert run_span.attributes["gofer.status"] == "successful"
    (admission,) = by_name["run.admission_wait"]
    assert admission.parent.span_id == run_span.context.span_id
    for task in ("compile", "test"):
        (task_span,) = by_name[f"task {task}"]
        assert task_span.parent.span_id == run_span.context.span_id
        assert task_span.context.trace_id == request.context.trace_id
        phases = [s.name for s in finished if s.parent is not None and s.parent.span_id == task_span.context.span_id]
        assert sorted(phases) == ["task.container_start", "task.log_drain", "task.queue_wait", "task.running"]
    # Every span of the run is in the request's trace.
    gofer_spans = [s for s in finished if s.name.startswith(("run", "task"))]
    assert {s.context.trace_id for s in gofer_spans} == {request.context.trace_id}
    # Spans end after they start, and the run's span covers its tasks'.
    assert all(s.end_time >= s.start_time for s in gofer_spans)
    assert run_span.start_time <= min(s.start_time for s in gofer_spans if s.name.startswith("task "))


def test_metrics_count_runs_by_status_task_durations_and_admission_waits(telemetry_memory, alice, memory_engine):
    _, reader = telemetry_memory
    _run_pipeline(alice, memory_engine)
    points = {}
    for resource_metrics in reader.get_metrics_data().resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = list(metric.data.data_points)
    (completed,) = points["gofer.runs.completed"]
    assert completed.value == 1 and dict(completed.attributes) == {"namespace": "team-a", "status": "successful"}
    durations = points["gofer.task.duration"]
    assert sum(p.count for p in durations) == 2
    assert {p.attributes["status"] for p in durations} == {"successful"}
    assert sum(p.count for p in points["gofer.run.admission_wait"]) == 1
    runs_gauge = {p.attributes["state"]: p.value for p in points["gofer.runs"]}
    assert runs_gauge == {"pending": 0, "running": 0}


def test_queue_depth_and_wait_are_read_per_namespace_from_the_database(telemetry_memory, memory_engine, settings):
    from kernel.rbac import SYSTEM_PRINCIPAL  # noqa: PLC0415
    from runs import services as runs  # noqa: PLC0415 - test-local

    _, reader = telemetry_memory
    pipeline = pipeline_with([sh("t", "busybox:latest", "echo hi")], pipeline_id="queued", namespace_id="team-q")
    for _ in range(3):
        runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    points = {}
    for resource_metrics in reader.get_metrics_data().resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = list(metric.data.data_points)
    assert [(dict(p.attributes), p.value) for p in points["gofer.queue.depth"]] == [({"namespace": "team-q"}, 3)]
    (wait,) = points["gofer.queue.wait"]
    assert wait.attributes["namespace"] == "team-q" and wait.value >= 0


def test_with_traces_off_a_run_stores_no_trace_and_the_helpers_do_nothing(transactional_db, memory_engine):
    otel.reset()
    try:
        assert tracing.current_context() == {}
        pipeline = pipeline_with([sh("t", "busybox:latest", "echo hi")], pipeline_id="quiet")
        from kernel.rbac import SYSTEM_PRINCIPAL  # noqa: PLC0415
        from runs import services as runs  # noqa: PLC0415 - test-local

        run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
        assert Run.objects.get(pk=run.pk).trace_context == {}
        metrics.run_completed("team-a", "successful")  # no provider: nothing to count, and no error
    finally:
        otel.configure_from_environment()


def test_a_run_started_outside_any_request_gets_a_trace_of_its_own(telemetry_memory, memory_engine):
    spans, _ = telemetry_memory
    from kernel.rbac import SYSTEM_PRINCIPAL  # noqa: PLC0415 - test-local
    from runs import services as runs  # noqa: PLC0415

    pipeline = pipeline_with([sh("t", "busybox:latest", "echo hi")], pipeline_id="cron")
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    memory_engine.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete")
    run = Run.objects.get(pk=run.pk)
    assert run.trace_context["trace_id"] and run.trace_context["parent_span_id"] == ""
    (run_span,) = [s for s in spans.get_finished_spans() if s.name == "run"]
    assert f"{run_span.context.trace_id:032x}" == run.trace_context["trace_id"]
