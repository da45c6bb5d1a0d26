"""OTLP/HTTP export, as configured by the standard variables, to a real receiver: an http.server on loopback that
decodes the protobuf requests the exporters send (/v1/traces, /v1/metrics)."""

from __future__ import annotations

import gzip
import http.server
import threading
import time

import pytest
import requests
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from kernel.rbac import SYSTEM_PRINCIPAL
from runs import services as runs
from runs.models import Run
from telemetry import otel
from tests.support.engine import pipeline_with, sh
from tests.support.processes import Server


class _Receiver(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list = []
        self.metrics: list = []
        self.headers_seen: list = []
        self.lock = threading.Lock()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        with self.server.lock:
            self.server.headers_seen.append(dict(self.headers))
            if self.path == "/v1/traces":
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        self.server.spans.extend((resource_spans.resource, span) for span in scope_spans.spans)
            elif self.path == "/v1/metrics":
                request = ExportMetricsServiceRequest.FromString(body)
                for resource_metrics in request.resource_metrics:
                    for scope_metrics in resource_metrics.scope_metrics:
                        self.server.metrics.extend(metric.name for metric in scope_metrics.metrics)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def bare_receiver():
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture
def receiver(monkeypatch):
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=gofer-tests")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gofer-under-test")
    otel.reset()
    otel.configure_from_environment()
    try:
        yield server
    finally:
        otel.reset()  # flushes to the receiver, which must still be there
        server.shutdown()
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
        otel.configure_from_environment()


def test_spans_and_metrics_reach_an_otlp_http_receiver(receiver, memory_engine):
    assert otel.tracing()
    pipeline = pipeline_with([sh("hello", "busybox:latest", "echo hello")], pipeline_id="exported")
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    memory_engine.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete")
    run = Run.objects.get(pk=run.pk)
    assert otel.state.tracer_provider.force_flush()
    assert otel.state.meter_provider.force_flush()
    names = {span.name for _, span in receiver.spans}
    assert {"run", "task hello", "task.running", "task.container_start", "task.queue_wait"} <= names
    (run_span,) = [span for _, span in receiver.spans if span.name == "run"]
    assert run_span.trace_id.hex() == run.trace_context["trace_id"]
    service_names = {
        attribute.value.string_value
        for resource, _ in receiver.spans
        for attribute in resource.attributes
        if attribute.key == "service.name"
    }
    assert service_names == {"gofer-under-test"}
    assert {"gofer.runs.completed", "gofer.task.duration", "gofer.runs"} <= set(receiver.metrics)
    # The standard header variable is honoured.
    assert all(h.get("x-tenant") == "gofer-tests" for h in receiver.headers_seen)


@pytest.mark.slow
def test_a_server_process_under_daphne_exports_a_span_per_request(transactional_db, bare_receiver, admin):
    """The Django instrumentation under ASGI (daphne), configured by the standard variables alone."""
    endpoint = f"http://127.0.0.1:{bare_receiver.server_address[1]}"
    server = Server(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_BSP_SCHEDULE_DELAY="100")
    try:
        answer = requests.get(
            f"{server.url}/api/namespaces", headers={"Authorization": f"Bearer {admin.token}"}, timeout=10
        )
        assert answer.status_code == 200

        def exported():
            with bare_receiver.lock:
                return [
                    span
                    for _, span in bare_receiver.spans
                    if span.kind == span.SPAN_KIND_SERVER
                    and any(
                        a.key in ("http.route", "http.target", "url.path") and "namespaces" in a.value.string_value
                        for a in span.attributes
                    )
                ]

        deadline = time.monotonic() + 30
        while not exported() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert exported(), [span.name for _, span in bare_receiver.spans]
    finally:
        server.stop()
