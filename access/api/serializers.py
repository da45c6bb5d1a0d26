"""Wire shapes of tokens, roles and system preferences."""

from __future__ import annotations

from rest_framework import serializers

from access.models import Token
from kernel.api.serializers import EpochMsField, envelope


class TokenSerializer(serializers.Serializer):
    id = serializers.CharField()
    user = serializers.CharField()
    kind = serializers.CharField()
    roles = serializers.SerializerMethodField()
    metadata = serializers.DictField(child=serializers.CharField())
    created = EpochMsField()
    expires = EpochMsField(help_text="Epoch ms; 0 means never.")
    disabled = serializers.BooleanField()
    last_used = EpochMsField()

    def get_roles(self, token: Token) -> list[str]:
        return [role.id for role in token.roles.all()]


class PermissionSerializer(serializers.Serializer):
    resources = serializers.ListField(child=serializers.CharField())
    actions = serializers.ListField(child=serializers.ChoiceField(choices=["read", "write", "delete"]))


class RoleSerializer(serializers.Serializer):
    id = serializers.CharField()
    description = serializers.CharField()
    permissions = PermissionSerializer(many=True)
    system_role = serializers.BooleanField()


class CreateTokenRequest(serializers.Serializer):
    user = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    expires = serializers.IntegerField(help_text="Seconds from now; 0 means never.")
    metadata = serializers.DictField(child=serializers.CharField(), required=False)


class UpdateTokenRequest(serializers.Serializer):
    disabled = serializers.BooleanField()


class CreateRoleRequest(serializers.Serializer):
    id = serializers.CharField()
    description = serializers.CharField()
    permissions = PermissionSerializer(many=True)


class UpdateRoleRequest(serializers.Serializer):
    description = serializers.CharField(required=False)
    permissions = PermissionSerializer(many=True, required=False)


class SystemPreferencesSerializer(serializers.Serializer):
    bootstrap_token_created = serializers.BooleanField()
    ignore_pipeline_run_events = serializers.BooleanField()


class UpdateSystemPreferencesRequest(serializers.Serializer):
    ignore_pipeline_run_events = serializers.BooleanField(required=False)


class SystemMetadataSerializer(serializers.Serializer):
    semver = serializers.CharField()
    commit = serializers.CharField()


ListTokensResponse = envelope("ListTokensResponse", tokens=TokenSerializer(many=True))
TokenResponse = envelope("TokenResponse", token=TokenSerializer())
CreateTokenResponse = envelope("CreateTokenResponse", secret=serializers.CharField(), token_details=TokenSerializer())


class RoleWarningSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="Where in the request: permissions[0].resources[1].")
    message = serializers.CharField()


ListRolesResponse = envelope("ListRolesResponse", roles=RoleSerializer(many=True))
RoleResponse = envelope("RoleResponse", role=RoleSerializer())
RoleChangeResponse = envelope(
    "RoleChangeResponse",
    role=RoleSerializer(),
    warnings=RoleWarningSerializer(many=True, help_text="Targets whose meaning changed when targets became anchored."),
)
