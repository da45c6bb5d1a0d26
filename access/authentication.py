"""DRF authentication with Gofer tokens: ``Authorization: Bearer <token>``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from access import services
from kernel.errors import Unauthenticated
from kernel.rbac import Principal


class TokenAuthentication(BaseAuthentication):
    """Returns ``(principal, token)``; no header means no principal (the view decides if anonymous is allowed)."""

    def authenticate(self, request: Request) -> tuple[Principal, Any] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthenticated(
                "malformed Authorization header: expected 'Bearer <token>'", field=services.AUTH_HEADER
            )
        token = services.authenticate(secret.strip())
        services.touch_last_used(token)
        return services.principal_for_token(token), token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="gofer"'


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes Gofer tokens in the OpenAPI document (drf-spectacular finds it by ``target_class``)."""

    target_class = TokenAuthentication
    name = "goferToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A Gofer token: 'Authorization: Bearer <token>'."}
