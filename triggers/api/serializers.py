"""Gofer v0's shapes for extensions and subscriptions (``Extension``, ``Registration``, ``Documentation``,
``Subscription``), plus our additions (kind, state description, next and last firing). Settings are shown redacted:
sensitive values never leave the server."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from kernel.api.serializers import EpochMsField, envelope
from triggers import services
from triggers.models import Extension, Subscription

REDACTED = "[redacted]"


class ParameterSerializer(serializers.Serializer):
    key = serializers.CharField()
    required = serializers.BooleanField()
    documentation = serializers.CharField()
    sensitive = serializers.BooleanField(required=False)


class DocumentationSerializer(serializers.Serializer):
    body = serializers.CharField()
    config_params = ParameterSerializer(many=True)
    pipeline_subscription_params = ParameterSerializer(many=True)


class VariableSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.CharField()
    source = serializers.CharField()


class RegistrationSerializer(serializers.Serializer):
    extension_id = serializers.CharField(source="id")
    image = serializers.CharField()
    kind = serializers.CharField()
    settings = serializers.SerializerMethodField()
    registry_auth = serializers.SerializerMethodField()
    additional_roles = serializers.ListField(child=serializers.CharField())
    created = EpochMsField()
    modified = EpochMsField()
    status = serializers.CharField()

    def get_settings(self, extension: Extension) -> list[dict[str, str]]:
        shown = services.shown_config(extension)
        return [{"key": k, "value": v, "source": "system"} for k, v in sorted(shown.items())]

    def get_registry_auth(self, extension: Extension) -> dict[str, str] | None:
        auth = extension.registry_auth
        return {"user": auth.get("user", ""), "pass": REDACTED} if auth else None


class ExtensionSerializer(serializers.Serializer):
    registration = serializers.SerializerMethodField()
    documentation = serializers.SerializerMethodField()
    kind = serializers.CharField()
    started = EpochMsField()
    state = serializers.CharField()
    state_description = serializers.CharField()
    url = serializers.CharField()
    protocol_version = serializers.CharField()

    def get_registration(self, extension: Extension) -> dict[str, Any]:
        return RegistrationSerializer(extension).data

    def get_documentation(self, extension: Extension) -> dict[str, Any]:
        return services.documentation_of(extension)


class StatusReasonSerializer(serializers.Serializer):
    reason = serializers.CharField()
    description = serializers.CharField()


class SubscriptionSerializer(serializers.Serializer):
    namespace_id = serializers.CharField()
    pipeline_id = serializers.SerializerMethodField()
    extension_id = serializers.CharField()
    subscription_id = serializers.CharField()
    settings = serializers.SerializerMethodField()
    status = serializers.CharField()
    status_reason = serializers.SerializerMethodField()
    created = EpochMsField()
    modified = EpochMsField()
    next_firing = EpochMsField(source="next_fire_at")
    last_firing = EpochMsField(source="last_fired_at")
    last_run_id = serializers.IntegerField(source="last_run_number", allow_null=True)

    def get_pipeline_id(self, subscription: Subscription) -> str:
        return subscription.pipeline.slug

    def get_settings(self, subscription: Subscription) -> dict[str, str]:
        return services.shown_settings(subscription)

    def get_status_reason(self, subscription: Subscription) -> dict[str, str] | None:
        if not subscription.status_reason:
            return None
        return {"reason": subscription.status_reason, "description": subscription.status_description}


class InstallExtensionRequest(serializers.Serializer):
    id = serializers.CharField()
    image = serializers.CharField(help_text="A container image, or builtin:<id> for a built-in.")
    settings = serializers.DictField(child=serializers.CharField())
    kind = serializers.ChoiceField(choices=["trigger", "notifier"], required=False)
    registry_auth = serializers.DictField(child=serializers.CharField(), required=False, allow_null=True)
    additional_roles = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True)
    entrypoint = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True)
    command = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True)


class UpdateExtensionRequest(serializers.Serializer):
    enable = serializers.BooleanField()


class CreateSubscriptionRequest(serializers.Serializer):
    extension_id = serializers.CharField()
    subscription_id = serializers.CharField()
    settings = serializers.DictField(child=serializers.CharField())


class UpdateSubscriptionRequest(serializers.Serializer):
    status = serializers.ChoiceField(choices=["active", "disabled"], required=False, allow_null=True)


ListExtensionsResponse = envelope("ListExtensionsResponse", extensions=ExtensionSerializer(many=True))
GetExtensionResponse = envelope("GetExtensionResponse", extension=ExtensionSerializer())
InstallExtensionResponse = envelope("InstallExtensionResponse", extension=ExtensionSerializer())
DebugResponse = envelope("DebugResponse", info=serializers.CharField())
ListSubscriptionsResponse = envelope("ListSubscriptionsResponse", subscriptions=SubscriptionSerializer(many=True))
ListExtensionSubscriptionsResponse = envelope(
    "ListExtensionSubscriptionsResponse", subscriptions=SubscriptionSerializer(many=True)
)
GetSubscriptionResponse = envelope("GetSubscriptionResponse", subscription=SubscriptionSerializer())
CreateSubscriptionResponse = envelope("CreateSubscriptionResponse", subscription=SubscriptionSerializer())
