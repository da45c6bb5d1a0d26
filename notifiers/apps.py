from django.apps import AppConfig


class NotifiersConfig(AppConfig):
    """What Gofer tells the outside world about runs (later issues)."""

    name = "notifiers"
