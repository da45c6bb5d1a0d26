from django.apps import AppConfig


class TelemetryConfig(AppConfig):
    """What operators watch: OpenTelemetry traces and metrics (OTLP export, the Prometheus ``/metrics``), and the
    health probes ``/healthz`` and ``/readyz``. Above the kernel only: the apps above instrument themselves through
    its helpers and register their own readiness checks and gauges (inversion, docs/architecture.md)."""

    name = "telemetry"
    verbose_name = "Telemetry"

    def ready(self) -> None:
        # lazy: the providers read settings, and the Django instrumentation must change MIDDLEWARE before any
        # handler loads it, which happens after ready().
        from telemetry import health, otel

        otel.configure_from_environment()
        health.register("database", health.database_ready)
        health.register("queue", health.queue_ready)
