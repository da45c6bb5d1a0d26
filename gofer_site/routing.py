"""Websocket routes, collected from the apps that serve streams."""

websocket_urlpatterns: list = []
