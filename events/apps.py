from django.apps import AppConfig


class EventsConfig(AppConfig):
    """The event log: every state change as a row, broadcast to websocket listeners."""

    name = "events"
