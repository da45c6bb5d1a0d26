"""The runs app's telemetry: the spans of runs and task executions, the metrics of the engine, the database gauges
and the scheduler's readiness check, through the telemetry app's helpers (docs/observability.md).

Spans, in the trace of the request (or firing) that started the run (``Run.trace_context``):

    POST .../runs                  the request (opentelemetry-instrumentation-django)
    └── run                        queued -> completed
        ├── run.admission_wait     queued -> admitted
        └── task <id>              created at admission -> completed
            ├── task.queue_wait    created -> a worker starts it (waiting for its parents, then for a worker)
            ├── task.container_start   the engine starting (pulling, creating) the container
            ├── task.running       the container's own start -> exit (the engine's times)
            └── task.log_drain     storing the output left after the exit

The finished ones are recorded by the receivers of ``run_admitted``, ``task_execution_finished`` and
``run_finished`` (after the commit, in the worker that completed them); the live ones wrap the engine's calls in
runs/engine/driving.py. With traces and metrics off each receiver returns at its first line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.db.models import Count, Min
from django.utils import timezone

from runs.choices import RunState
from runs.models import Run, TaskExecution
from runs.schedulers import get_scheduler
from runs.signals import run_admitted, run_finished, task_execution_finished
from telemetry import health, metrics, otel, tracing


def _on() -> bool:
    return otel.tracing() or otel.state.meter_provider is not None


def _run_attributes(run: Run) -> dict[str, Any]:
    return {"gofer.namespace": run.namespace_id, "gofer.pipeline": run.pipeline.slug, "gofer.run": run.number}


def _task_attributes(te: TaskExecution) -> dict[str, Any]:
    return {**_run_attributes(te.run), "gofer.task": te.task_slug}


def _te_parent(te: TaskExecution) -> tuple[dict[str, str], int] | None:
    trace = te.run.trace_context
    if not otel.tracing() or not trace or not trace.get("trace_id"):
        return None
    return trace, tracing.task_span_id(trace, te.pk)


# --- live phases (runs/engine/driving.py) ---------------------------------------------------------------------


def queue_waited(te: TaskExecution) -> None:
    """The task waited from its creation until now, when a worker starts it (once: not again on a retried start)."""
    where = _te_parent(te)
    if where is None or te.start_attempts:
        return
    trace, parent = where
    tracing.record(
        "task.queue_wait", trace, parent=parent, start=te.created, end=timezone.now(), attributes=_task_attributes(te)
    )


@contextlib.contextmanager
def phase(name: str, te: TaskExecution) -> Iterator[None]:
    """A live span of one of the task's phases (``task.container_start``, ``task.log_drain``)."""
    where = _te_parent(te)
    if where is None:
        yield
        return
    trace, parent = where
    with tracing.phase(name, trace, parent=parent, attributes=_task_attributes(te)):
        yield


# --- finished spans and metrics (signal receivers, runs/apps.py) -------------------------------------------------


def on_run_admitted(sender: Any, run: Run, **_: Any) -> None:
    if not _on() or run.started is None:
        return
    metrics.run_admitted(run.namespace_id, (run.started - run.created).total_seconds())
    trace = run.trace_context
    if otel.tracing() and trace:
        tracing.record(
            "run.admission_wait",
            trace,
            parent=tracing.run_span_id(trace, run.pk),
            start=run.created,
            end=run.started,
            attributes=_run_attributes(run),
        )


def on_task_execution_finished(
    sender: Any, task_execution_pk: int, run_pk: int, task_execution: TaskExecution | None = None, **_: Any
) -> None:
    if not _on():
        return
    te = task_execution
    if te is None:
        te = TaskExecution.objects.select_related("run", "run__pipeline").filter(pk=task_execution_pk).first()
    if te is None:
        return
    ran = (te.ended - te.started).total_seconds() if te.started and te.ended else None
    metrics.task_completed(te.namespace_id, te.status, ran)
    where = _te_parent(te)
    if where is None:
        return
    trace, span_id = where
    attributes = {**_task_attributes(te), "gofer.status": te.status, "gofer.exit_code": te.exit_code or 0}
    if te.started is not None:
        tracing.record("task.running", trace, parent=span_id, start=te.started, end=te.ended, attributes=attributes)
    tracing.record(
        f"task {te.task_slug}",
        trace,
        parent=tracing.run_span_id(trace, te.run_id),
        span_id=span_id,
        start=te.created,
        end=max(te.ended or timezone.now(), timezone.now()),
        attributes=attributes,
        error=te.status_description if te.status == "failed" else "",
    )


def on_run_finished(sender: Any, run_pk: int, **_: Any) -> None:
    if not _on():
        return
    run = Run.objects.select_related("pipeline").filter(pk=run_pk).first()
    if run is None:
        return
    metrics.run_completed(run.namespace_id, run.status)
    trace = run.trace_context
    if otel.tracing() and trace:
        tracing.record(
            "run",
            trace,
            parent=None,
            span_id=tracing.run_span_id(trace, run.pk),
            start=run.created,
            end=run.ended,
            attributes={**_run_attributes(run), "gofer.status": run.status},
            error=run.status_description if run.status == "failed" else "",
        )


# --- gauges and readiness ---------------------------------------------------------------------------------------


def runs_by_state() -> metrics.Reading:
    counts = dict(
        Run.objects.filter(state__in=[RunState.PENDING, RunState.RUNNING])
        .values_list("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    return [(float(counts.get(state, 0)), {"state": str(state)}) for state in (RunState.PENDING, RunState.RUNNING)]


def _pending_by_namespace() -> list[tuple[str, int, Any]]:
    return list(
        Run.objects.filter(state=RunState.PENDING)
        .values("namespace_id")
        .annotate(n=Count("id"), oldest=Min("created"))
        .values_list("namespace_id", "n", "oldest")
    )


def queue_depth() -> metrics.Reading:
    return [(float(n), {"namespace": namespace}) for namespace, n, _ in _pending_by_namespace()]


def queue_wait() -> metrics.Reading:
    now = timezone.now()
    return [
        (max(0.0, (now - oldest).total_seconds()), {"namespace": namespace})
        for namespace, _, oldest in _pending_by_namespace()
    ]


def scheduler_ready() -> None:
    get_scheduler().ping()


def install() -> None:
    """Connect the receivers, register the gauges and the readiness check (RunsConfig.ready)."""
    run_admitted.connect(on_run_admitted, dispatch_uid="runs.telemetry.run_admitted")
    task_execution_finished.connect(on_task_execution_finished, dispatch_uid="runs.telemetry.task_finished")
    run_finished.connect(on_run_finished, dispatch_uid="runs.telemetry.run_finished")
    metrics.register_gauge("gofer.runs", "Runs not yet complete, by state", "{run}", runs_by_state)
    metrics.register_gauge("gofer.queue.depth", "Runs waiting to be admitted, per namespace", "{run}", queue_depth)
    metrics.register_gauge("gofer.queue.wait", "Age of the oldest waiting run, per namespace", "s", queue_wait)
    health.register("scheduler", scheduler_ready)
