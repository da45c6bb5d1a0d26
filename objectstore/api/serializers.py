"""Wire shapes of objects: Gofer v0's ``Object`` (``key``, ``created`` in epoch milliseconds) and its envelopes."""

from __future__ import annotations

from rest_framework import serializers

from kernel.api.serializers import EpochMsField, envelope


class ObjectSerializer(serializers.Serializer):
    key = serializers.CharField()
    created = EpochMsField()


ListPipelineObjectsResponse = envelope("ListPipelineObjectsResponse", objects=ObjectSerializer(many=True))
PutPipelineObjectResponse = envelope("PutPipelineObjectResponse", object=ObjectSerializer())
ListRunObjectsResponse = envelope("ListRunObjectsResponse", objects=ObjectSerializer(many=True))
PutRunObjectResponse = envelope("PutRunObjectResponse", object=ObjectSerializer())
ListExtensionObjectsResponse = envelope("ListExtensionObjectsResponse", objects=ObjectSerializer(many=True))
PutExtensionObjectResponse = envelope("PutExtensionObjectResponse", object=ObjectSerializer())
