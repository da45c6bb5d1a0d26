"""Websocket routes, collected from the apps that serve streams."""

from events.routing import websocket_urlpatterns as events_routes
from runs.routing import websocket_urlpatterns as runs_routes

websocket_urlpatterns = [*events_routes, *runs_routes]
