"""Spans of runs and task executions, whose lives cross requests, worker steps and processes.

A run is started by a request (or a trigger firing) and finishes minutes later in some worker. So:

- ``current_context()`` is stored on the run when it is created (``Run.trace_context``): the trace id and the span
  id of the request (or firing) that started it, or a fresh trace when nothing is being traced;
- the run's span and each task execution's span have ids **derived** from the trace id and the row
  (``run_span_id``, ``task_span_id``), so any process can name them as parents before they exist;
- phases that happen inside one worker step are live spans (``phase``: container start, log drain); those that span
  steps are recorded when they end, with their real start time (``record``: queue wait, running, the task
  execution itself, the run itself).

Everything returns at its first line when traces are off (telemetry/otel.py): no provider, no cost.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from telemetry import otel


def current_context() -> dict[str, str]:
    """What a new run stores (``Run.trace_context``): ``{"trace_id", "parent_span_id"}`` (hex) of the span being
    recorded now (the request's), or a new trace with no parent; ``{}`` when traces are off."""
    if not otel.tracing():
        return {}
    current = otel_trace.get_current_span().get_span_context()
    if current.is_valid:
        return {"trace_id": f"{current.trace_id:032x}", "parent_span_id": f"{current.span_id:016x}"}
    return {"trace_id": f"{otel.GoferIdGenerator().generate_trace_id():032x}", "parent_span_id": ""}


def _derived_id(trace_id: str, *parts: object) -> int:
    digest = hashlib.sha256(":".join([trace_id, *map(str, parts)]).encode()).digest()
    return int.from_bytes(digest[:8], "big") or 1


def run_span_id(trace: Mapping[str, str], run_pk: int) -> int:
    return _derived_id(trace["trace_id"], "run", run_pk)


def task_span_id(trace: Mapping[str, str], task_execution_pk: int) -> int:
    return _derived_id(trace["trace_id"], "task", task_execution_pk)


def _parent(trace: Mapping[str, str], span_id: int | None) -> Any:
    """A context whose current span is ``span_id`` in ``trace`` (None: the trace's stored parent, or a root)."""
    trace_id = int(trace["trace_id"], 16)
    if span_id is None:
        stored = trace.get("parent_span_id") or ""
        if not stored:
            # A root span, in the stored trace: a parent-less context cannot carry the trace id, so the run's span
            # hangs off a non-recorded placeholder span of that trace.
            span_id = _derived_id(trace["trace_id"], "origin")
        else:
            span_id = int(stored, 16)
    context = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return otel_trace.set_span_in_context(NonRecordingSpan(context))


def _ns(when: dt.datetime | None) -> int | None:
    return int(when.timestamp() * 1_000_000_000) if when is not None else None


def record(
    name: str,
    trace: Mapping[str, str] | None,
    *,
    parent: int | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    span_id: int | None = None,
    attributes: Mapping[str, Any] | None = None,
    error: str = "",
) -> None:
    """Emit a finished span ``name`` of ``trace`` that ran from ``start`` to ``end`` (now when None), under span
    ``parent`` (None: the trace's stored parent), with the id ``span_id`` when given. Nothing when traces are off,
    the run has no trace, or ``start`` is unknown."""
    if not otel.tracing() or not trace or not trace.get("trace_id") or start is None:
        return
    token = otel.FORCED_SPAN_ID.set(span_id)
    try:
        span = otel.tracer().start_span(
            name,
            context=_parent(trace, parent),
            kind=SpanKind.INTERNAL,
            attributes=dict(attributes or {}),
            start_time=_ns(start),
        )
    finally:
        otel.FORCED_SPAN_ID.reset(token)
    if error:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_time=_ns(end))


@contextlib.contextmanager
def phase(
    name: str, trace: Mapping[str, str] | None, *, parent: int, attributes: Mapping[str, Any] | None = None
) -> Iterator[None]:
    """A live span around a block (container start, log drain), under span ``parent`` of ``trace``. An exception
    leaving the block marks it as an error and goes on."""
    if not otel.tracing() or not trace or not trace.get("trace_id"):
        yield
        return
    with otel.tracer().start_as_current_span(
        name, context=_parent(trace, parent), attributes=dict(attributes or {}), record_exception=True
    ):
        yield


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[None]:
    """A live span under whatever is current (a trigger firing): runs started inside it hang off it."""
    if not otel.tracing():
        yield
        return
    with otel.tracer().start_as_current_span(name, attributes=dict(attributes or {})):
        yield
