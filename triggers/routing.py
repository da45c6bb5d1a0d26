"""Websocket routes of the triggers app (Gofer v0's path)."""

from django.urls import path

from triggers import consumers

websocket_urlpatterns = [path("api/extensions/<str:extension_id>/logs", consumers.ExtensionLogsConsumer.as_asgi())]
