from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    """Namespaces, pipelines, their versioned configs, task definitions and deployments."""

    name = "pipelines"
