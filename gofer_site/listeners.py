"""The second listener: requests that arrived on ``GOFER_EXTERNAL_BIND`` are routed with the external URL conf.

``make run`` asks daphne to listen on both addresses; one ASGI application serves both, and this middleware (first
in MIDDLEWARE) picks the URL conf by the port the request came in on. Websockets on the external port are refused
in gofer_site/asgi.py.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

EXTERNAL_URLCONF = "gofer_site.external_urls"


def external_port() -> str | None:
    bind = settings.GOFER_EXTERNAL_BIND
    return bind.rsplit(":", 1)[1] if bind and ":" in bind else None


class ExternalListenerMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.port = external_port()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.port is not None and str(request.META.get("SERVER_PORT")) == self.port:
            request.urlconf = EXTERNAL_URLCONF
        return self.get_response(request)
