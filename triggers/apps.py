from django.apps import AppConfig


class TriggersConfig(AppConfig):
    """What starts runs besides the API: schedules, webhooks, extensions and subscriptions (later issues)."""

    name = "triggers"
