"""Wire shapes of secrets (Gofer v0's ``Secret``: ``{key, namespaces, created}``). Values appear only in
``GetPipelineSecretResponse.secret`` / ``GetGlobalSecretResponse.secret``, and only when asked for."""

from __future__ import annotations

from rest_framework import serializers

from kernel.api.serializers import EpochMsField, envelope
from secretstore.models import PipelineSecret


class PipelineSecretSerializer(serializers.Serializer):
    key = serializers.CharField()
    # Gofer answers a pipeline secret's namespaces with the one namespace it belongs to.
    namespaces = serializers.SerializerMethodField()
    created = EpochMsField()

    def get_namespaces(self, secret: PipelineSecret) -> list[str]:
        return [secret.namespace_id]


class GlobalSecretSerializer(serializers.Serializer):
    key = serializers.CharField()
    namespaces = serializers.ListField(child=serializers.CharField())
    created = EpochMsField()


class PutPipelineSecretRequest(serializers.Serializer):
    """Documentation of the request body; the service validates it (and names the field at fault)."""

    key = serializers.CharField(help_text="1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'.")
    content = serializers.CharField(help_text="The plaintext value; at most GOFER_SECRET_MAX_BYTES bytes.")
    force = serializers.BooleanField(required=False, default=False, help_text="Overwrite an existing key.")


class PutGlobalSecretRequest(PutPipelineSecretRequest):
    namespaces = serializers.ListField(
        child=serializers.CharField(), help_text="Regexes of the namespaces allowed to use the secret."
    )


ListPipelineSecretsResponse = envelope("ListPipelineSecretsResponse", secrets=PipelineSecretSerializer(many=True))
PutPipelineSecretResponse = envelope("PutPipelineSecretResponse", secret=PipelineSecretSerializer())
GetPipelineSecretResponse = envelope(
    "GetPipelineSecretResponse",
    metadata=PipelineSecretSerializer(),
    secret=serializers.CharField(required=False, help_text="Only with include_secret=true."),
)
ListGlobalSecretsResponse = envelope("ListGlobalSecretsResponse", secrets=GlobalSecretSerializer(many=True))
PutGlobalSecretResponse = envelope("PutGlobalSecretResponse", secret=GlobalSecretSerializer())
GetGlobalSecretResponse = envelope(
    "GetGlobalSecretResponse",
    metadata=GlobalSecretSerializer(),
    secret=serializers.CharField(required=False, help_text="Only with include_secret=true."),
)
