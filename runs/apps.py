from django.apps import AppConfig


class RunsConfig(AppConfig):
    """Runs and task executions: admission, the orchestrator, schedulers and logs."""

    name = "runs"

    def ready(self) -> None:
        # lazy: receivers import models, which exist only once the app registry is ready.
        from django_q.signals import post_spawn

        from pipelines.signals import config_deleting, namespace_deleting, pipeline_deleting
        from runs import receivers, services, telemetry

        namespace_deleting.connect(receivers.on_namespace_deleting, dispatch_uid="runs.namespace_deleting")
        pipeline_deleting.connect(receivers.on_pipeline_deleting, dispatch_uid="runs.pipeline_deleting")
        config_deleting.connect(receivers.on_config_deleting, dispatch_uid="runs.config_deleting")
        # A worker process that starts (a restart after a crash, above all) asks for a reconciliation at once
        # instead of waiting for the next scheduled one.
        post_spawn.connect(receivers.on_worker_spawned, dispatch_uid="runs.worker_spawned")
        services.register_quota_usage()
        # Spans, metrics, gauges and the scheduler's readiness check (docs/observability.md).
        telemetry.install()
