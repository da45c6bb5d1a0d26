"""Websocket routes of the events app."""

from django.urls import path

from events import consumers

websocket_urlpatterns = [path("api/events", consumers.EventsConsumer.as_asgi())]
