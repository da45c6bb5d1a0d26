"""Telemetry fixtures: the SDK's in-memory span exporter and metric reader installed as this process's providers
(with the Django instrumentation), and the orchestrator on the memory engine through the inline queue."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runs.schedulers import get_scheduler, memory
from telemetry import health, otel
from tests.support import engine as engine_support


@pytest.fixture(autouse=True)
def _fresh_readiness():
    """Each test's probes run the checks with that test's settings, not a round another test left behind."""
    health.forget_readiness()
    yield
    health.forget_readiness()


@pytest.fixture
def telemetry_memory():
    """(span exporter, metric reader), in memory, for the test; the process's own providers again afterwards."""
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    otel.configure(span_exporter=spans, metric_readers=[reader], prometheus=True)
    try:
        yield spans, reader
    finally:
        otel.reset()
        otel.configure_from_environment()


@pytest.fixture
def memory_engine(transactional_db, settings, monkeypatch):
    settings.GOFER_SCHEDULER = "memory"
    settings.GOFER_DRIVE_SLICE_SECONDS = 2
    settings.GOFER_LEASE_SECONDS = 4
    memory.reset()
    get_scheduler.cache_clear()
    inline = engine_support.install(monkeypatch)
    inline.kind, inline.image = "memory", "busybox:latest"
    try:
        yield inline
    finally:
        memory.reset()
        get_scheduler.cache_clear()
