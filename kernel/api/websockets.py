"""The websocket side of the v0 protocol: origin check, the access gate, and errors in the Gofer shape.

Websocket routes (task logs, events, attach) pass the same gate as HTTP routes (kernel/api/views.py): a consumer
declares one ``rule`` (action, resources, admin-only, anonymous allowed), and before its ``open()`` runs the base
class authenticates ``Authorization: Bearer <token>`` on the handshake and resolves the route's namespace and
pipeline through the access gate. A consumer without a rule, or one that overrides the checks, cannot be declared.
An error is sent as one JSON text frame in the usual error shape, then the socket is closed with code
``4000 + HTTP status`` (4401, 4403, 4404...), so a client can tell "not found" from a network failure.

The checks run in the order HTTP applies them: an unsupported ``gofer-api-version`` is a 400
``unsupported_api_version``; then a missing or bad token is a 401; then a NUL character in a path or query
parameter is a 400 naming it; then the gate's 404/403.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from django.conf import settings

from kernel import gate
from kernel.api.errors import status_of
from kernel.api.middleware import SUPPORTED_API_VERSIONS
from kernel.api.pagination import parse_bool, parse_int
from kernel.api.views import NUL, Rule
from kernel.errors import FieldError, GoferError, Unauthenticated, ValidationFailed
from kernel.rbac import Principal

VERSION_HEADER = "gofer-api-version"


class UnsupportedApiVersion(ValidationFailed):
    """The handshake asked for an API version this server does not speak (HTTP answers the same, in middleware)."""

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

    PostgreSQL cannot store or compare NUL; HTTP routes refuse it the same way (kernel/api/views.py).
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
            return gate.current().anonymous()
        raise Unauthenticated("missing token: send the header 'Authorization: Bearer <token>'", field="Authorization")
    kind, _, secret = header.partition(" ")
    if kind.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("malformed Authorization header: expected 'Bearer <token>'", field="Authorization")
    return gate.current().principal_for_bearer(secret.strip())


def query_pairs(scope: dict[str, Any], *, keep_blank_values: bool = True) -> list[tuple[str, str]]:
    return parse_qsl(scope.get("query_string", b"").decode("latin1"), keep_blank_values=keep_blank_values)


def query_params(scope: dict[str, Any]) -> dict[str, str]:
    """The query parameters; an empty one (``?format=``) counts as absent, as in the HTTP views."""
    return dict(query_pairs(scope, keep_blank_values=False))


GUARDED_ATTRIBUTES = ("websocket_connect", "connect", "_admit")


class GoferWebsocketConsumer(AsyncWebsocketConsumer):
    """Base consumer: a request id per connection, the access gate, and errors in the Gofer shape.

    Declare ``rule = rule(Action.READ, Resource.RUNS, ...)`` and write ``open()``; ``self.principal``,
    ``self.namespace`` and ``self.pipeline`` are resolved and checked when it runs.
    """

    rule: ClassVar[Rule | None] = None
    request_id: str
    principal: Principal
    namespace: Any = None
    pipeline: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in GUARDED_ATTRIBUTES:
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__} may not override {name}: access checks live in GoferWebsocketConsumer")
        if cls.rule is None:
            raise TypeError(f"{cls.__name__} has no access rule: declare rule = rule(...)")

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        self.request_id = uuid.uuid4().hex
        await self.accept()
        try:
            await database_sync_to_async(self._admit)()
        except GoferError as error:
            await self.fail(error)
            return
        await self.open()

    def _admit(self) -> None:
        """Version, token, NUL and the gate, in the order HTTP applies them (sync)."""
        current = self.rule
        assert current is not None  # __init_subclass__ guarantees it
        self.principal = principal_from_scope(self.scope, anonymous_allowed=current.anonymous)
        check_no_nul(self.scope)
        kwargs = (self.scope.get("url_route") or {}).get("kwargs", {})
        namespace_id, pipeline_id = kwargs.get("namespace_id"), kwargs.get("pipeline_id")
        the_gate = gate.current()
        if namespace_id is None and pipeline_id is None:
            the_gate.require(self.principal, current.action, current.resources, admin=current.admin)
            return
        resolved = the_gate.resolve(
            self.principal, current.action, current.resources, namespace_id=namespace_id, pipeline_id=pipeline_id
        )
        self.namespace, self.pipeline = resolved.namespace, resolved.pipeline
        if current.admin:
            the_gate.require(self.principal, current.action, (), admin=True)

    async def open(self) -> None:
        """Start serving the accepted, authorised connection. Subclasses implement it."""
        raise NotImplementedError

    async def fail(self, error: GoferError) -> None:
        """Report ``error`` and close. The socket is already accepted, so the client can read the reason."""
        body = {
            "error_code": error.code,
            "message": error.message,
            "request_id": self.request_id,
            "errors": [e.as_dict() for e in error.errors],
        }
        await self.send(text_data=json.dumps(body))
        await self.close(code=4000 + status_of(error))

    def bool_param(self, name: str, default: bool = False) -> bool:
        return parse_bool(query_params(self.scope).get(name), name, default)

    def int_param(self, name: str, default: int, minimum: int = 0) -> int:
        return parse_int(query_params(self.scope).get(name), name, default, minimum)
