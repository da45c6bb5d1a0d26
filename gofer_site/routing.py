"""Websocket routes, collected from the apps that serve streams."""

from events.routing import websocket_urlpatterns as events_routes
from runs.routing import websocket_urlpatterns as runs_routes
from triggers.routing import websocket_urlpatterns as triggers_routes

websocket_urlpatterns = [*events_routes, *runs_routes, *triggers_routes]
