"""The OpenTelemetry providers of this process, set up once from the environment (``configure_from_environment``,
called by TelemetryConfig.ready in every server and worker process).

- **Traces** are on when an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; the exporter reads the other standard ``OTEL_EXPORTER_OTLP_*`` variables,
  headers, timeouts, certificates itself): a batch span processor with the OTLP/HTTP exporter, and
  opentelemetry-instrumentation-django for a span per request (HTTP and ASGI). Off: no provider at all, and every
  helper (telemetry/tracing.py) returns at its first line.
- **Metrics** are on when an OTLP endpoint is set (a periodic OTLP/HTTP reader) or ``GOFER_METRICS_PROMETHEUS`` is
  (a reader the ``/metrics`` view collects on demand). Off: the instruments are OpenTelemetry's no-op ones.
- ``OTEL_SDK_DISABLED=true`` turns both off, as the standard says; ``OTEL_SERVICE_NAME`` and
  ``OTEL_RESOURCE_ATTRIBUTES`` name the service (default ``gofer``).

The providers are this module's, not OpenTelemetry's global ones (which can be set only once per process): tests
install an in-memory exporter and reader with ``configure`` and go back with ``reset``.
"""

from __future__ import annotations

import contextvars
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

SCOPE = "gofer"

# A span id a span created now must take (telemetry/tracing.py gives runs and task executions ids derived from
# their rows, so that spans emitted later, in other processes, can name them as parents).
FORCED_SPAN_ID: contextvars.ContextVar[int | None] = contextvars.ContextVar("gofer_forced_span_id", default=None)


class GoferIdGenerator(IdGenerator):
    """Random ids, except a span id forced through ``FORCED_SPAN_ID``."""

    def generate_span_id(self) -> int:
        forced = FORCED_SPAN_ID.get()
        return forced if forced else random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return random.getrandbits(128) or 1


@dataclass
class State:
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    # Set when the Prometheus reader is installed: the registry /metrics renders.
    prometheus_registry: Any = None
    instrumented_django: bool = False
    listeners: list[Any] = field(default_factory=list)


state = State()


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def otlp_traces_configured() -> bool:
    return bool(_env("OTEL_EXPORTER_OTLP_ENDPOINT") or _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def otlp_metrics_configured() -> bool:
    return bool(_env("OTEL_EXPORTER_OTLP_ENDPOINT") or _env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))


def resource() -> Resource:
    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME.
    name = _env("OTEL_SERVICE_NAME") or "gofer"
    return Resource.create({"service.name": name, "service.version": settings.GOFER_SEMVER})


def configure_from_environment() -> None:
    """The providers the environment asks for (see the module's docstring). Idempotent per process."""
    if state.tracer_provider is not None or state.meter_provider is not None:
        return
    if _env("OTEL_SDK_DISABLED").lower() == "true":
        return
    span_exporter = None
    if otlp_traces_configured():
        # lazy: the exporter pulls in protobuf and requests; installations without OTLP never load it.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter()
    readers: list[MetricReader] = []
    if otlp_metrics_configured():
        # lazy: as above.
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    configure(
        span_exporter=span_exporter,
        metric_readers=readers,
        prometheus=settings.GOFER_METRICS_PROMETHEUS,
        batch=True,
    )


def configure(
    *,
    span_exporter: SpanExporter | None = None,
    metric_readers: Iterable[MetricReader] = (),
    prometheus: bool = False,
    batch: bool = False,
    instrument_django: bool = True,
) -> None:
    """Install providers: traces when ``span_exporter`` is given (batched, or exported as each span ends), metrics
    when readers are given or ``prometheus`` is set. Replaces what was installed (``reset`` first)."""
    reset()
    if span_exporter is not None:
        provider = TracerProvider(resource=resource(), id_generator=GoferIdGenerator())
        provider.add_span_processor(BatchSpanProcessor(span_exporter) if batch else SimpleSpanProcessor(span_exporter))
        state.tracer_provider = provider
    readers = list(metric_readers)
    if prometheus:
        # lazy: prometheus_client and its exporter are needed only when scraping is on.
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry

        state.prometheus_registry = CollectorRegistry()
        # No otel_scope_* labels: every instrument is Gofer's own scope.
        readers.append(PrometheusMetricReader(registry=state.prometheus_registry, scope_info_enabled=False))
    if readers:
        state.meter_provider = MeterProvider(resource=resource(), metric_readers=readers)
    if state.tracer_provider is not None and instrument_django:
        # lazy: the instrumentation imports Django's handlers; loaded only when traces are on.
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        DjangoInstrumentor().instrument(
            tracer_provider=state.tracer_provider,
            meter_provider=state.meter_provider,
            # The probes and the scrape are not requests anyone wants traced.
            excluded_urls="healthz,readyz,metrics",
        )
        state.instrumented_django = True
    for listener in state.listeners:
        listener()


def reset() -> None:
    """Back to no providers (flushing and shutting down what was installed)."""
    if state.instrumented_django:
        # lazy: see configure.
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        DjangoInstrumentor().uninstrument()
        state.instrumented_django = False
    if state.tracer_provider is not None:
        state.tracer_provider.shutdown()
    if state.meter_provider is not None:
        state.meter_provider.shutdown()
    state.tracer_provider = state.meter_provider = state.prometheus_registry = None
    for listener in state.listeners:
        listener()


def on_change(listener: Any) -> None:
    """Call ``listener()`` whenever the providers change (the instruments of telemetry/metrics.py are rebuilt)."""
    state.listeners.append(listener)


def tracing() -> bool:
    return state.tracer_provider is not None


def tracer() -> otel_trace.Tracer:
    provider = state.tracer_provider
    return provider.get_tracer(SCOPE) if provider is not None else otel_trace.NoOpTracer()


def meter() -> otel_metrics.Meter:
    provider = state.meter_provider
    return provider.get_meter(SCOPE) if provider is not None else otel_metrics.NoOpMeter(SCOPE)
