"""The websocket side of the v0 protocol: origin check, the access gate, and errors in the Gofer shape.

Websocket routes (task logs, events, attach) pass the same gate as HTTP routes (kernel/api/views.py): a consumer
declares one ``rule`` (action, resources, admin-only, anonymous allowed), and before its ``open()`` runs the base
class authenticates ``Authorization: Bearer <token>`` on the handshake and resolves the route's namespace and
pipeline through the access gate. A consumer without a rule, or one that overrides the checks, cannot be declared.
An error is sent as one JSON text frame in the usual error shape, then the socket is closed with code
``4000 + HTTP status`` (4401, 4403, 4404...), so a client can tell "not found" from a network failure.

The checks run in the order HTTP applies them: an unsupported ``gofer-api-version`` is a 400
``unsupported_api_version``; then a missing or bad token is a 401; then a NUL character in a path or query
parameter is a 400 naming it; then the gate's 404/403; then the cap on open streams per token, a 429 (4429;
kernel/api/streams.py).

Access is not only checked at the handshake. An open stream re-checks its token and its roles every
``GOFER_STREAM_RECHECK_SECONDS``, and at once when ``access`` reports the token disabled, deleted or its roles
changed (kernel/api/streams.py): a token that no longer authenticates closes the stream with the error frame and
**4401**; roles that no longer allow the route close it with what a new handshake would get (4403, 4404). From that
moment the consumer sends nothing more and hears nothing more from the client, and its ``disconnect`` runs (its
streamers stop, an attach session is closed). Roles that changed but still allow the stream take effect in it
(``self.principal`` is replaced; the events stream re-scopes).

A path no route matches is answered the same way: the handshake is accepted, then a ``not_found`` frame and 4404
(``UnknownRouteConsumer``, the router's last route).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from asgiref.sync import sync_to_async
from channels.db import aclose_old_connections, database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from django.conf import settings
from django.urls import re_path

from kernel import gate
from kernel.api import streams
from kernel.api.errors import status_of
from kernel.api.middleware import SUPPORTED_API_VERSIONS, scope_client_address
from kernel.api.pagination import parse_bool, parse_int
from kernel.api.views import NUL, Rule
from kernel.errors import FieldError, GoferError, NotFound, Unauthenticated, ValidationFailed
from kernel.gate import Resolved
from kernel.rbac import Principal

logger = logging.getLogger(__name__)

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


GUARDED_ATTRIBUTES = (
    "websocket_connect",
    "websocket_receive",
    "websocket_disconnect",
    "connect",
    "send",
    "_admit",
    "_authorise",
    "_watch",
    "_recheck",
    "_revoke",
    "gofer_access_changed",
)


def error_frame(error: GoferError, request_id: str) -> str:
    """The one JSON text frame an error is reported in, before the close ``4000 + status``."""
    return json.dumps(
        {
            "error_code": error.code,
            "message": error.message,
            "request_id": request_id,
            "errors": [e.as_dict() for e in error.errors],
        }
    )


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
    # Set once access is revoked (or the stream failed): nothing more is sent to, or taken from, the client.
    _stopped: bool = False
    _disconnected: bool = False
    _slot: str = ""
    _watcher: asyncio.Task | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in GUARDED_ATTRIBUTES:
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__} may not override {name}: access checks live in GoferWebsocketConsumer")
        if cls.rule is None:
            raise TypeError(f"{cls.__name__} has no access rule: declare rule = rule(...)")

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        self.request_id = uuid.uuid4().hex
        self._recheck_now = asyncio.Event()
        await self.accept()
        try:
            await database_sync_to_async(self._admit)()
        except GoferError as error:
            await self.fail(error)
            return
        if self.principal.token_id and self.channel_layer is not None:
            group = streams.token_group(self.principal.token_id)
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups.append(group)  # left again in websocket_disconnect
        self._watcher = asyncio.create_task(self._watch())
        await self.open()

    def _authorise(self) -> tuple[Principal, Resolved]:
        """Version, token, NUL and the gate, in the order HTTP applies them (sync). Raises GoferError."""
        current = self.rule
        assert current is not None  # __init_subclass__ guarantees it
        principal = principal_from_scope(self.scope, anonymous_allowed=current.anonymous)
        check_no_nul(self.scope)
        kwargs = (self.scope.get("url_route") or {}).get("kwargs", {})
        namespace_id, pipeline_id = kwargs.get("namespace_id"), kwargs.get("pipeline_id")
        the_gate = gate.current()
        if namespace_id is None and pipeline_id is None:
            the_gate.require(principal, current.action, current.resources, admin=current.admin)
            return principal, Resolved()
        resolved = the_gate.resolve(
            principal,
            current.action,
            current.resources,
            namespace_id=namespace_id,
            pipeline_id=pipeline_id,
            run_id=kwargs.get("run_id"),
        )
        if current.admin:
            the_gate.require(principal, current.action, (), admin=True)
        # The roles that apply on this route (a run token's bound roles): the consumer acts as this principal.
        return resolved.principal or principal, resolved

    def _owner(self) -> str:
        """Whose stream this is, for the cap: the token, or an anonymous caller's address."""
        return self.principal.token_id or f"anonymous.{scope_client_address(self.scope)}"

    def _admit(self) -> None:
        """Authorise the handshake and take one of the owner's stream slots (sync)."""
        self.principal, resolved = self._authorise()
        self.namespace, self.pipeline = resolved.namespace, resolved.pipeline
        self._slot = streams.acquire(self._owner(), self.request_id)

    def _recheck(self) -> Principal:
        """Authorise again with what the token and its roles are now, and keep the slot (sync). Raises GoferError."""
        principal, _ = self._authorise()
        streams.renew(self._slot, self.request_id)
        return principal

    async def _watch(self) -> None:
        """Re-check access every GOFER_STREAM_RECHECK_SECONDS, and whenever access reports a change."""
        while not self._stopped:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._recheck_now.wait(), timeout=settings.GOFER_STREAM_RECHECK_SECONDS)
            self._recheck_now.clear()
            try:
                principal = await database_sync_to_async(self._recheck)()
            except GoferError as error:
                await self._revoke(error)
                return
            except Exception:
                # The database or the cache is briefly unreachable: the stream stays as it is until the next check.
                logger.warning("re-checking the access of stream %s failed", self.request_id, exc_info=True)
                continue
            if principal != self.principal:
                self.principal = principal

    async def gofer_access_changed(self, message: dict[str, Any]) -> None:
        """kernel/api/streams.py: this token was disabled, deleted or its roles changed."""
        self._recheck_now.set()

    async def _revoke(self, error: GoferError) -> None:
        """Access is gone: report why, close, and stop the consumer as if the client had left."""
        self._stopped = True
        code = 4000 + status_of(error)
        with contextlib.suppress(Exception):
            await AsyncWebsocketConsumer.send(self, text_data=error_frame(error, self.request_id))
            await self.close(code=code)
        if not self._disconnected:
            self._disconnected = True
            await self.disconnect(code)

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False) -> None:
        if self._stopped:
            return
        await super().send(text_data=text_data, bytes_data=bytes_data, close=close)

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        if self._stopped:
            return
        await super().websocket_receive(message)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        self._stopped = True
        watcher = self._watcher
        if watcher is not None and watcher is not asyncio.current_task():
            watcher.cancel()
        if self._slot:
            await sync_to_async(streams.release, thread_sensitive=False)(self._slot, self.request_id)
        if self.channel_layer is not None:
            for group in self.groups:
                await self.channel_layer.group_discard(group, self.channel_name)
        if not self._disconnected:  # _revoke may have run it already
            self._disconnected = True
            await self.disconnect(message.get("code", 1000))
        await aclose_old_connections()
        raise StopConsumer()

    async def open(self) -> None:
        """Start serving the accepted, authorised connection. Subclasses implement it."""
        raise NotImplementedError

    async def fail(self, error: GoferError) -> None:
        """Report ``error`` and close. The socket is already accepted, so the client can read the reason."""
        await self.send(text_data=error_frame(error, self.request_id))
        await self.close(code=4000 + status_of(error))

    def bool_param(self, name: str, default: bool = False) -> bool:
        return parse_bool(query_params(self.scope).get(name), name, default)

    def int_param(self, name: str, default: int, minimum: int = 0) -> int:
        return parse_int(query_params(self.scope).get(name), name, default, minimum)


class UnknownRouteConsumer(AsyncWebsocketConsumer):
    """The websocket router's last route: any path no other route matches is a ``not_found`` frame and 4404, as
    HTTP answers 404, instead of the router's exception (a 500 with a traceback in the log)."""

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        await self.accept()
        error = NotFound(f"no websocket route {self.scope.get('path', '')!r:.200}", field="path")
        await self.send(text_data=error_frame(error, uuid.uuid4().hex))
        await self.close(code=4000 + status_of(error))


def unknown_route() -> Any:
    """The catch-all route to put last in a websocket URLRouter."""
    return re_path(r"", UnknownRouteConsumer.as_asgi())
