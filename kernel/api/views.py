"""The base class of every API view: authentication, the access rule of each method, and tenant scoping.

A view declares, per HTTP method, one ``Rule``: the action, the resources, whether the route is admin-only, and
whether anonymous callers may use it. Before the handler runs, ``initial`` authenticates the caller and, for routes
under ``/namespaces/{namespace_id}`` (and ``/pipelines/{pipeline_id}``), resolves those objects through the
access gate (kernel/gate.py) with the rule's permission: ``self.namespace`` and ``self.pipeline`` are already
checked when the handler sees them, and every query of tenant data is derived from them. A method without a rule
cannot be defined (``__init_subclass__`` refuses the class), and a subclass cannot override the checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings
from rest_framework import status as http
from rest_framework.exceptions import AuthenticationFailed, ParseError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from kernel import gate
from kernel.api import ratelimits
from kernel.errors import Unauthenticated, ValidationFailed
from kernel.rbac import Principal

HANDLER_METHODS = ("get", "post", "put", "patch", "delete")
# PostgreSQL cannot store NUL in text or jsonb: refused here as a 400 rather than failing there as a 500.
NUL = "\x00"
GUARDED_ATTRIBUTES = ("initial", "check_permissions", "check_object_permissions", "get_authenticators", "_resolve")


@dataclass(frozen=True)
class Rule:
    """The access rule of one HTTP method of one route."""

    action: str
    resources: tuple[str, ...] = ()
    admin: bool = False
    anonymous: bool = False
    # Routes that run before any token exists (bootstrap) or must answer everyone (metadata).
    public: bool = False
    # Registering a config creates its pipeline: the pipeline need not exist, the permission is checked on its id.
    may_create_pipeline: bool = False


def rule(
    action: str,
    *resources: str,
    admin: bool = False,
    anonymous: bool = False,
    public: bool = False,
    may_create_pipeline: bool = False,
) -> Rule:
    return Rule(
        action,
        tuple(resources),
        admin=admin,
        anonymous=anonymous,
        public=public,
        may_create_pipeline=may_create_pipeline,
    )


class GoferAPIView(APIView):
    """Subclass this for every API route. Declare ``rules = {"GET": rule(...), ...}``; write handlers only."""

    rules: ClassVar[dict[str, Rule]] = {}
    http_method_names: ClassVar[list[str]] = ["get", "post", "patch", "delete", "head"]
    # The largest request body the route takes: (the setting that holds it, the variable that sets it). The server
    # refuses a larger announced body before reading it (kernel/api/daphne_streaming.py).
    body_limit: ClassVar[tuple[str, str]] = ("DATA_UPLOAD_MAX_MEMORY_SIZE", "GOFER_MAX_REQUEST_BYTES")
    # Counted against GOFER_RATELIMIT_API (per token) or GOFER_RATELIMIT_ANONYMOUS (per address) before the handler
    # runs (kernel/api/ratelimits.py). Off only for routes with a limit of their own in its place (external ones).
    caller_rate_limit: ClassVar[bool] = True

    principal: Principal
    # The namespace and pipeline models' instances (the kernel does not import the apps that define them).
    namespace: Any
    pipeline: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in GUARDED_ATTRIBUTES:
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__} may not override {name}: access checks live in GoferAPIView only")
        for method in HANDLER_METHODS:
            if method in cls.__dict__ and method.upper() not in cls.rules:
                raise TypeError(f"{cls.__name__}.{method} has no access rule in {cls.__name__}.rules")

    # --- the gate ---------------------------------------------------------------------------------------------------

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        try:
            super().initial(request, *args, **kwargs)
        except (Unauthenticated, AuthenticationFailed):
            # A refused token counts against its address like an anonymous request, so guessing tokens is limited.
            if self.caller_rate_limit:
                ratelimits.limit_caller(request, None)
            raise
        method = "GET" if request.method == "HEAD" else request.method
        current = self.rules.get(method)
        if current is None:
            self.http_method_not_allowed(request)
        try:
            self.principal = self._principal(request, current)
        except Unauthenticated:
            # No token where one is needed: counted against the address too, or such requests would be free.
            if self.caller_rate_limit:
                ratelimits.limit_caller(request, None)
            raise
        if self.caller_rate_limit:
            ratelimits.limit_caller(request, self.principal)
        for name, value in kwargs.items():
            if NUL in str(value):
                raise ValidationFailed(f"{name}: must not contain NUL characters", field=name)
        self._resolve(current, kwargs)

    def _principal(self, request: Request, current: Rule) -> Principal:
        principal = request.user
        if isinstance(principal, Principal):
            return principal
        if current.public or (current.anonymous and settings.GOFER_ALLOW_ANONYMOUS):
            return gate.current().anonymous()
        raise Unauthenticated("missing token: send the header 'Authorization: Bearer <token>'", field="Authorization")

    def _resolve(self, current: Rule, kwargs: dict[str, Any]) -> None:
        if current.public:
            return
        namespace_id = kwargs.get("namespace_id")
        pipeline_id = kwargs.get("pipeline_id")
        the_gate = gate.current()
        if namespace_id is None and pipeline_id is None:
            the_gate.require(self.principal, current.action, current.resources, admin=current.admin)
            return
        resolved = the_gate.resolve(
            self.principal,
            current.action,
            current.resources,
            namespace_id=namespace_id,
            pipeline_id=pipeline_id,
            may_create_pipeline=current.may_create_pipeline,
            run_id=kwargs.get("run_id"),
        )
        if resolved.principal is not None:
            self.principal = resolved.principal
        self.namespace = resolved.namespace
        if resolved.pipeline is not None:
            self.pipeline = resolved.pipeline
        if current.admin:
            the_gate.require(self.principal, current.action, (), admin=True)

    # --- helpers for handlers -------------------------------------------------------------------------------------

    def body(self) -> dict[str, Any]:
        """The JSON body as an object (an empty body is ``{}``); anything else is a 400 naming ``body``."""
        try:
            data = self.request.data
        except RecursionError:
            # json refuses very deep nesting with RecursionError, which DRF's parser does not turn into a 400.
            raise ParseError("JSON is nested too deeply") from None
        if data is None or data == {}:
            return {}
        if not isinstance(data, dict):
            raise ValidationFailed("body: must be a JSON object", field="body")
        where = _path_of_nul(data)
        if where is not None:
            raise ValidationFailed(f"{where}: must not contain NUL characters", field=where)
        return data

    def known_fields(self, data: dict[str, Any], allowed: Iterable[str]) -> dict[str, Any]:
        """Refuse fields the endpoint does not know, so that a typo is an error rather than silently ignored."""
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ValidationFailed(f"{unknown[0]}: unknown field", field=unknown[0])
        return data


def _path_of_nul(data: dict[str, Any]) -> str | None:
    """The path (``config.tasks[0].image``) of the first string or key holding a NUL character, or None."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if NUL in value:
                return path
        elif isinstance(value, dict):
            for key, item in value.items():
                if NUL in key:
                    return path or "body"
                stack.append((f"{path}.{key}" if path else key, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
    return None


def ok(payload: dict[str, Any]) -> Response:
    return Response(payload, status=http.HTTP_200_OK)


# A successful call that changed nothing says so in this header, whatever its status: the status is always the one
# the Gofer v0 contract documents for the route (docs/api.md, "Updates that change nothing").
CHANGED_HEADER = "Gofer-Changed"


def _said_unchanged(response: Response) -> Response:
    response[CHANGED_HEADER] = "false"
    return response


def created(payload: dict[str, Any]) -> Response:
    return Response(payload, status=http.HTTP_201_CREATED)


def no_content() -> Response:
    return Response(status=http.HTTP_204_NO_CONTENT)


def unchanged(message: str, payload: dict[str, Any] | None = None) -> Response:
    """A successful update that changed nothing, on a route whose success is 200: the object where the route
    returns one, ``changed: false`` and a message, and the header."""
    return _said_unchanged(Response({**(payload or {}), "changed": False, "message": message}, status=http.HTTP_200_OK))


def created_unchanged(message: str, payload: dict[str, Any]) -> Response:
    """A successful call that changed nothing, on a route whose success is 201 (deploying the live version again):
    201 with the route's body, ``changed: false`` and a message, and the header."""
    return _said_unchanged(Response({**payload, "changed": False, "message": message}, status=http.HTTP_201_CREATED))


def no_content_unchanged() -> Response:
    """A successful call that changed nothing, on a route whose success is 204: 204 with the header (no body)."""
    return _said_unchanged(no_content())
