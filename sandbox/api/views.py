"""POST /api/sandbox: a visitor's namespace and token (our addition; only in sandbox mode)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from access.api.serializers import TokenSerializer
from kernel.api.ratelimits import rate_limited
from kernel.api.views import GoferAPIView, created, rule
from kernel.choices import Action
from pipelines.api.serializers import NamespaceSerializer, quotas_as_api
from pipelines.quotas import quotas_of
from sandbox import services
from sandbox.api import serializers as s


class SandboxView(GoferAPIView):
    """Anonymous, rate-limited per client address (GOFER_RATELIMIT_SANDBOX, django-ratelimit's counters in the
    cache through kernel/api/ratelimits.py, so the limit holds across server processes): 429 with Retry-After."""

    rules = {"POST": rule(Action.WRITE, public=True)}

    @extend_schema(operation_id="create_sandbox", request=None, responses={201: s.SandboxResponse}, tags=["Sandbox"])
    @rate_limited("GOFER_RATELIMIT_SANDBOX", per="address", group="gofer.sandbox")
    def post(self, request: Request) -> Response:
        # REMOTE_ADDR is the client's address as kernel.api.middleware.ClientAddressMiddleware worked it out.
        visitor, secret = services.sign_up(request.META.get("REMOTE_ADDR", ""))
        return created(
            {
                "namespace": NamespaceSerializer(visitor.namespace).data,
                "quotas": quotas_as_api(quotas_of(visitor.namespace_id)),
                "secret": secret,
                "token_details": TokenSerializer(visitor.token).data,
            }
        )
