"""``/healthz``, ``/readyz`` (unauthenticated, cheap: plain Django views, no session, no token lookup) and
``/metrics`` (Prometheus' text format, for a token with ``read`` on ``system``: an operator's)."""

from __future__ import annotations

from typing import ClassVar

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request

from kernel.api.errors import error_body, json_error
from kernel.api.views import GoferAPIView, rule
from kernel.choices import Action, Resource
from kernel.errors import FieldError
from telemetry import health, otel


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers. Nothing else is checked (that is /readyz)."""
    return JsonResponse({"status": "ok"})


@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every check (database, queue, scheduler engine) answers; 503 naming those that do not."""
    outcome = health.readiness()
    failed = [name for name, state in outcome.items() if state != "ok"]
    if not failed:
        return JsonResponse({"status": "ready", "checks": outcome})
    message = f"not ready: {', '.join(failed)} unreachable"
    body = error_body(request, "not_ready", message, [FieldError(name, "unreachable") for name in failed])
    return JsonResponse({**body, "checks": outcome}, status=503)


class MetricsView(GoferAPIView):
    """Prometheus scrapes this with ``Authorization: Bearer <token>`` (``bearer_token_file`` in its job)."""

    rules: ClassVar = {"GET": rule(Action.READ, Resource.SYSTEM)}

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        registry = otel.state.prometheus_registry
        if registry is None:
            return json_error(
                request, 404, "not_found", "metrics are off: set GOFER_METRICS_PROMETHEUS=true to serve them here"
            )
        # lazy: prometheus_client is loaded only when scraping is on.
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
