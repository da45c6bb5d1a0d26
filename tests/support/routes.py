"""The API's routes as the URL conf and the websocket routing declare them, for tests that walk every route (the
permission matrix, the OpenAPI contract, docs/api.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

# A value for every path parameter, naming the objects the matrix's ``victim`` fixture creates.
PATH_VALUES = {
    "namespace_id": "team-a",
    "pipeline_id": "build",
    "run_id": "1",
    "version": "1",
    "deployment_id": "1",
    "task_id": "compile",
    "key": "some-key",
    "extension_id": "some-extension",
    "subscription_id": "some-subscription",
    "event_id": "1",
    "role_id": "admin",
    "id": "00000000-0000-0000-0000-000000000000",
}
_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def api_routes() -> list[tuple[str, str, Any]]:
    """(path template, method, rule) for every API route and method that has an access rule."""
    routes = []
    for template, callback in _walk(get_resolver().url_patterns):
        view_class = getattr(callback, "view_class", None)
        rules = getattr(view_class, "rules", None)
        if not template.startswith("api/") or not rules:
            continue
        for method, rule in rules.items():
            routes.append((template, method, rule))
    return routes


def websocket_routes() -> list[tuple[str, Any]]:
    """(path template, consumer class) for every websocket route (gofer_site/routing.py)."""
    from gofer_site.routing import websocket_urlpatterns

    return [(str(entry.pattern), entry.callback.consumer_class) for entry in websocket_urlpatterns]


def openapi_path(template: str) -> str:
    """``/api/namespaces/{namespace_id}`` for the URL conf's ``api/namespaces/<str:namespace_id>``."""
    return "/" + _PARAMETER.sub(r"{\1}", template)


def fill(template: str) -> str:
    """The template with every parameter replaced by its PATH_VALUES value."""
    return "/" + _PARAMETER.sub(lambda match: PATH_VALUES[match.group(1)], template)
