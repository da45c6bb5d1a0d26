from django.apps import AppConfig


class RunsConfig(AppConfig):
    """Runs and task executions: admission, the orchestrator, schedulers and logs."""

    name = "runs"

    def ready(self) -> None:
        from pipelines.signals import namespace_deleting, pipeline_deleting
        from runs import receivers

        namespace_deleting.connect(receivers.on_namespace_deleting, dispatch_uid="runs.namespace_deleting")
        pipeline_deleting.connect(receivers.on_pipeline_deleting, dispatch_uid="runs.pipeline_deleting")
        # A worker process that starts (a restart after a crash, above all) asks for a reconciliation at once
        # instead of waiting for the next scheduled one.
        from django_q.signals import post_spawn

        post_spawn.connect(receivers.on_worker_spawned, dispatch_uid="runs.worker_spawned")
