"""Tokens, roles and system preferences (Gofer v0 paths)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from access import services
from access.api import serializers as s
from access.models import SystemPreferences, Token
from kernel.api.pagination import page_from
from kernel.api.views import GoferAPIView, created, no_content, no_content_unchanged, ok, rule, unchanged
from kernel.choices import Action, Resource

TOKENS = Resource.TOKENS
SYSTEM = Resource.SYSTEM


class TokenListView(GoferAPIView):
    rules = {"GET": rule(Action.READ, TOKENS, admin=True), "POST": rule(Action.WRITE, TOKENS, admin=True)}

    @extend_schema(operation_id="list_tokens", responses=s.ListTokensResponse, tags=["Tokens"])
    def get(self, request: Request) -> Response:
        page = page_from(request)
        tokens = page.apply(Token.objects.prefetch_related("roles"), "created", "id")
        return ok({"tokens": s.TokenSerializer(tokens, many=True).data})

    @extend_schema(
        operation_id="create_token",
        request=s.CreateTokenRequest,
        responses={201: s.CreateTokenResponse},
        tags=["Tokens"],
    )
    def post(self, request: Request) -> Response:
        body = self.known_fields(self.body(), {"user", "roles", "expires", "metadata"})
        secret, token = services.create_token(
            body.get("user"), body.get("roles"), body.get("expires", 0), body.get("metadata")
        )
        return created({"secret": secret, "token_details": s.TokenSerializer(token).data})


class BootstrapTokenView(GoferAPIView):
    rules = {"POST": rule(Action.WRITE, public=True)}

    @extend_schema(
        operation_id="create_bootstrap_token", request=None, responses={201: s.CreateTokenResponse}, tags=["Tokens"]
    )
    def post(self, request: Request) -> Response:
        secret, token = services.bootstrap_token()
        return created({"secret": secret, "token_details": s.TokenSerializer(token).data})


class WhoAmIView(GoferAPIView):
    rules = {"GET": rule(Action.READ)}

    @extend_schema(operation_id="whoami", responses=s.TokenResponse, tags=["Tokens"])
    def get(self, request: Request) -> Response:
        return ok({"token": s.TokenSerializer(services.get_token(self.principal.token_id)).data})


class TokenDetailView(GoferAPIView):
    rules = {
        "GET": rule(Action.READ, TOKENS, admin=True),
        "PATCH": rule(Action.WRITE, TOKENS, admin=True),
        "DELETE": rule(Action.DELETE, TOKENS, admin=True),
    }

    @extend_schema(operation_id="get_token_by_id", responses=s.TokenResponse, tags=["Tokens"])
    def get(self, request: Request, id: str) -> Response:  # noqa: A002 - Gofer's path parameter name
        return ok({"token": s.TokenSerializer(services.get_token(id)).data})

    @extend_schema(
        operation_id="update_token",
        request=s.UpdateTokenRequest,
        responses={204: None},
        tags=["Tokens"],
    )
    def patch(self, request: Request, id: str) -> Response:  # noqa: A002
        body = self.known_fields(self.body(), {"disabled"})
        token = services.get_token(id)
        disabled = body.get("disabled")
        if disabled is None:
            return no_content_unchanged()  # no field to update was given
        if not services.set_token_disabled(token, disabled):
            return no_content_unchanged()  # the token is already disabled (or enabled)
        return no_content()

    @extend_schema(operation_id="delete_token", responses={204: None}, tags=["Tokens"])
    def delete(self, request: Request, id: str) -> Response:  # noqa: A002
        services.delete_token(services.get_token(id))
        return no_content()


class RoleListView(GoferAPIView):
    rules = {"GET": rule(Action.READ), "POST": rule(Action.WRITE, admin=True)}

    @extend_schema(operation_id="list_roles", responses=s.ListRolesResponse, tags=["Roles"])
    def get(self, request: Request) -> Response:
        # Admins see every role; others only those they hold (a role's targets name other tenants' namespaces).
        page = page_from(request)
        roles = page.apply(services.visible_roles(self.principal), "id")
        return ok({"roles": s.RoleSerializer(roles, many=True).data})

    @extend_schema(
        operation_id="create_role", request=s.CreateRoleRequest, responses={201: s.RoleChangeResponse}, tags=["Roles"]
    )
    def post(self, request: Request) -> Response:
        body = self.known_fields(self.body(), {"id", "description", "permissions"})
        role = services.create_role(body.get("id"), body.get("description", ""), body.get("permissions"))
        warnings = services.role_warnings(role.id, role.permissions)
        return created({"role": s.RoleSerializer(role).data, "warnings": warnings})


class RoleDetailView(GoferAPIView):
    rules = {
        "GET": rule(Action.READ),
        "PATCH": rule(Action.WRITE, admin=True),
        "DELETE": rule(Action.DELETE, admin=True),
    }

    @extend_schema(operation_id="get_role", responses=s.RoleResponse, tags=["Roles"])
    def get(self, request: Request, role_id: str) -> Response:
        return ok({"role": s.RoleSerializer(services.get_role(role_id, visible_to=self.principal)).data})

    @extend_schema(
        operation_id="update_role", request=s.UpdateRoleRequest, responses={200: s.RoleChangeResponse}, tags=["Roles"]
    )
    def patch(self, request: Request, role_id: str) -> Response:
        body = self.known_fields(self.body(), {"description", "permissions"})
        role = services.get_role(role_id)
        changed = services.update_role(role, body.get("description"), body.get("permissions"))
        warnings = services.role_warnings(role.id, role.permissions if body.get("permissions") is not None else None)
        payload = {"role": s.RoleSerializer(role).data, "warnings": warnings}
        return ok(payload) if changed else unchanged("nothing changed: the role already has these values", payload)

    @extend_schema(operation_id="delete_role", responses={204: None}, tags=["Roles"])
    def delete(self, request: Request, role_id: str) -> Response:
        services.delete_role(services.get_role(role_id))
        return no_content()


class SystemView(GoferAPIView):
    rules = {"GET": rule(Action.READ, SYSTEM, admin=True), "PATCH": rule(Action.WRITE, SYSTEM, admin=True)}

    @extend_schema(operation_id="get_system_preferences", responses=s.SystemPreferencesSerializer, tags=["System"])
    def get(self, request: Request) -> Response:
        return ok(s.SystemPreferencesSerializer(SystemPreferences.load()).data)

    @extend_schema(
        operation_id="update_system_preferences",
        request=s.UpdateSystemPreferencesRequest,
        responses={200: s.SystemPreferencesSerializer},
        tags=["System"],
    )
    def patch(self, request: Request) -> Response:
        body = self.known_fields(self.body(), {"ignore_pipeline_run_events"})
        changed = services.update_system_preferences(body.get("ignore_pipeline_run_events"))
        payload = s.SystemPreferencesSerializer(SystemPreferences.load()).data
        return ok(payload) if changed else unchanged("nothing changed", payload)


class SystemMetadataView(GoferAPIView):
    rules = {"GET": rule(Action.READ, public=True)}

    @extend_schema(operation_id="get_system_metadata", responses=s.SystemMetadataSerializer, tags=["System"])
    def get(self, request: Request) -> Response:
        return ok({"semver": settings.GOFER_SEMVER, "commit": settings.GOFER_COMMIT})
