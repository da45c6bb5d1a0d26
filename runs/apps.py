from django.apps import AppConfig


class RunsConfig(AppConfig):
    """Runs and task executions: admission, the orchestrator, schedulers and logs."""

    name = "runs"
