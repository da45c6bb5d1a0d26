"""The external endpoints: public routes (no token) that authenticate by signature. Bodies are read raw (what
was signed), bounded by ``GOFER_EXTERNAL_MAX_BODY_BYTES`` (413, checked before reading when the length is
announced), and rate-limited per source address (``GOFER_RATELIMIT_EXTERNAL``, 429 with ``Retry-After``). They
answer as soon as the run is recorded and queued, never waiting for it."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status as http
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response

from kernel.api import ratelimits
from kernel.api.views import GoferAPIView, ok, rule
from kernel.choices import Action
from kernel.errors import TooLarge
from triggers import external

TAGS = ["External"]
RATE_GROUP = "gofer-external"


class _RawParser(BaseParser):
    """Never used to parse (the views read the raw body); it only lets any content type through."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> bytes:
        return b""


class ExternalView(GoferAPIView):
    # The base of the external routes (a comment, not a docstring: the schema would show it on every route).
    parser_classes: ClassVar[list] = [_RawParser]
    authentication_classes: ClassVar[list] = []
    # Their own limit per source address (GOFER_RATELIMIT_EXTERNAL) instead of the API's.
    caller_rate_limit: ClassVar[bool] = False

    def raw_body(self, request: Request) -> bytes:
        """The body as sent, at most ``GOFER_EXTERNAL_MAX_BODY_BYTES``; 413 beyond, 429 over the rate limit."""
        self._limit(request)
        limit = settings.GOFER_EXTERNAL_MAX_BODY_BYTES
        announced = request.META.get("CONTENT_LENGTH") or ""
        if announced.isdigit() and int(announced) > limit:
            raise TooLarge(f"body: {announced} bytes; the limit is {limit}", field="body")
        body = request._request.read(limit + 1)
        if len(body) > limit:
            raise TooLarge(f"body: more than the limit of {limit} bytes", field="body")
        return body

    def _limit(self, request: Request) -> None:
        ratelimits.hit(
            request,
            group=RATE_GROUP,
            rate=settings.GOFER_RATELIMIT_EXTERNAL,
            key=ratelimits.address_key(request),
            setting="GOFER_RATELIMIT_EXTERNAL",
        )

    def headers_of(self, request: Request) -> dict[str, str]:
        return {key: value for key, value in request.headers.items()}


def accepted(payload: dict[str, Any]) -> Response:
    return Response(payload, status=http.HTTP_202_ACCEPTED)


class WebhookView(ExternalView):
    rules = {"POST": rule(Action.WRITE, public=True)}

    @extend_schema(
        operation_id="deliver_webhook", request={"*/*": OpenApiTypes.BINARY}, responses={202: None}, tags=TAGS
    )
    def post(self, request: Request, namespace_id: str, pipeline_id: str, subscription_id: str) -> Response:
        body = self.raw_body(request)
        delivery = external.deliver_webhook(namespace_id, pipeline_id, subscription_id, body, request.headers)
        run = delivery.runs[0]
        return accepted({**run.as_api(), "delivery_id": delivery.delivery_id})


class GitHubView(ExternalView):
    rules = {"POST": rule(Action.WRITE, public=True)}

    @extend_schema(
        operation_id="deliver_github_event", request={"*/*": OpenApiTypes.BINARY}, responses={202: None}, tags=TAGS
    )
    def post(self, request: Request) -> Response:
        body = self.raw_body(request)
        delivery = external.deliver_github(body, request.headers)
        if delivery is None:
            return ok({"message": "pong: nothing started"})
        return accepted({"delivery_id": delivery.delivery_id, "runs": [r.as_api() for r in delivery.runs]})


class ForwardView(ExternalView):
    rules = {"POST": rule(Action.WRITE, public=True)}

    @extend_schema(
        operation_id="forward_external_event", request={"*/*": OpenApiTypes.BINARY}, responses={200: None}, tags=TAGS
    )
    def post(self, request: Request, extension_id: str) -> HttpResponse:
        body = self.raw_body(request)
        status, answer = external.forward(extension_id, body, self.headers_of(request))
        return HttpResponse(answer, status=status, content_type="application/json")
