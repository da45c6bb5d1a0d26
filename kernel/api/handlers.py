"""Django's 404/500 handlers: API paths answer in the Gofer error shape, other paths with Django's pages."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views import defaults

from kernel.api.errors import json_error


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_error(request, 404, "not_found", f"no API route {request.path}")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_error(request, 500, "internal", "internal error; the request id identifies it in the server log")
    return defaults.server_error(request)
