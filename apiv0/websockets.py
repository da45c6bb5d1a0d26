"""The websocket side of the v0 protocol: origin check, authentication, and errors in the Gofer shape.

Websocket routes (task logs, events, attach) authenticate exactly like HTTP routes: ``Authorization: Bearer
<token>`` on the handshake, resolved by access.services into a principal, scoped by access.scope. An error is sent
as one JSON text frame in the usual error shape, then the socket is closed with code ``4000 + HTTP status``
(4401, 4403, 4404...), so a client can tell "not found" from a network failure.

Before a consumer runs, ``GoferWebsocketConsumer`` applies the checks every HTTP route gets from the middleware and
``GoferAPIView``, in the same order: an unsupported ``gofer-api-version`` is a 400 ``unsupported_api_version``; then
a NUL character in a path or query parameter is a 400 naming it, unless the caller is not authenticated (401 first,
so a NUL never hides a missing token).
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qsl

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from django.conf import settings

from access import services as access
from access.permissions import Principal
from apiv0.errors import FieldError, GoferError, Unauthenticated, ValidationFailed
from apiv0.middleware import SUPPORTED_API_VERSIONS
from apiv0.pagination import parse_bool, parse_int
from apiv0.views import NUL

VERSION_HEADER = "gofer-api-version"


class UnsupportedApiVersion(GoferError):
    """The handshake asked for an API version this server does not speak (HTTP answers the same, in middleware)."""

    status = 400
    code = "unsupported_api_version"


class BearerOriginValidator(OriginValidator):
    """Refuse browser handshakes from foreign origins; allow clients that send no Origin at all.

    Websocket auth here is a bearer token, never a cookie, so a page on another site cannot ride a user's session;
    the origin check still stops foreign pages from using a token they should not have. CLIs and SDKs send no Origin.
    """

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is None:
            return True
        return self.validate_origin(parsed_origin)


def origin_validator(application: Any) -> Any:
    allowed = AllowedHostsOriginValidator(application).allowed_origins  # computed from ALLOWED_HOSTS
    return BearerOriginValidator(application, allowed)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin1")
    return None


def check_api_version(scope: dict[str, Any]) -> None:
    """Raise UnsupportedApiVersion (400) when the handshake names a version other than v0; none at all is fine."""
    version = _header(scope, VERSION_HEADER.encode())
    if version is not None and version not in SUPPORTED_API_VERSIONS:
        raise UnsupportedApiVersion(
            f"{VERSION_HEADER}: {version!r:.40} is not supported; this server speaks v0",
            errors=[FieldError(VERSION_HEADER, "must be v0")],
        )


def check_no_nul(scope: dict[str, Any]) -> None:
    """Raise ValidationFailed naming the first path or query parameter that holds a NUL character.

    PostgreSQL cannot store or compare NUL; HTTP routes refuse it the same way (apiv0/views.py).
    """
    for name, value in (scope.get("url_route") or {}).get("kwargs", {}).items():
        if NUL in str(value):
            raise ValidationFailed(f"{name}: must not contain NUL characters", field=name)
    for name, value in query_pairs(scope):
        if NUL in name:
            raise ValidationFailed("query: a parameter name must not contain NUL characters", field="query")
        if NUL in value:
            raise ValidationFailed(f"{name}: must not contain NUL characters", field=name)


def principal_from_scope(scope: dict[str, Any], *, anonymous_allowed: bool = False) -> Principal:
    """Authenticate a handshake (sync; call through database_sync_to_async). Raises GoferError."""
    check_api_version(scope)
    header = _header(scope, b"authorization")
    if not header:
        if anonymous_allowed and settings.GOFER_ALLOW_ANONYMOUS:
            return access.anonymous_principal()
        raise Unauthenticated("missing token: send the header 'Authorization: Bearer <token>'")
    kind, _, secret = header.partition(" ")
    if kind.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("malformed Authorization header: expected 'Bearer <token>'")
    return access.principal_for_token(access.authenticate(secret.strip()))


def query_pairs(scope: dict[str, Any], *, keep_blank_values: bool = True) -> list[tuple[str, str]]:
    return parse_qsl(scope.get("query_string", b"").decode("latin1"), keep_blank_values=keep_blank_values)


def query_params(scope: dict[str, Any]) -> dict[str, str]:
    """The query parameters; an empty one (``?format=``) counts as absent, as in the HTTP views."""
    return dict(query_pairs(scope, keep_blank_values=False))


class GoferWebsocketConsumer(AsyncWebsocketConsumer):
    """Base consumer: a request id per connection and errors in the Gofer shape."""

    request_id: str
    # Whether the route serves anonymous callers (GOFER_ALLOW_ANONYMOUS); decides 401 versus 400 for a NUL below.
    anonymous_allowed: bool = False

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        self.request_id = uuid.uuid4().hex
        try:
            check_api_version(self.scope)
            try:
                check_no_nul(self.scope)
            except ValidationFailed:
                # As over HTTP, a missing or bad token is reported before the malformed parameter.
                await database_sync_to_async(principal_from_scope)(self.scope, anonymous_allowed=self.anonymous_allowed)
                raise
        except GoferError as error:
            await self.accept()
            await self.fail(error)
            return
        await super().websocket_connect(message)

    async def fail(self, error: GoferError) -> None:
        """Report ``error`` and close. Accepts first if needed, so the client can read the reason."""
        body = {
            "error_code": error.code,
            "message": error.message,
            "request_id": self.request_id,
            "errors": [e.as_dict() for e in error.errors],
        }
        await self.send(text_data=json.dumps(body))
        await self.close(code=4000 + error.status)

    def bool_param(self, name: str, default: bool = False) -> bool:
        return parse_bool(query_params(self.scope).get(name), name, default)

    def int_param(self, name: str, default: int, minimum: int = 0) -> int:
        return parse_int(query_params(self.scope).get(name), name, default, minimum)
