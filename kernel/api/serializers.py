"""Serializer building blocks shared by every app's API: epoch-millisecond times and response envelopes."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from kernel.times import epoch_ms

_UNSET = object()


@extend_schema_field(OpenApiTypes.INT)
class EpochMsField(serializers.Field):
    """A datetime as epoch milliseconds (Gofer's format); 0 when unset."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> int:
        return 0 if value is _UNSET else epoch_ms(value)

    def get_attribute(self, instance: Any) -> Any:
        # DRF renders a None attribute as null without asking the field; Gofer's "unset" is 0.
        value = super().get_attribute(instance)
        return _UNSET if value is None else value


_envelopes: dict[str, type[serializers.Serializer]] = {}


def envelope(name: str, **fields: serializers.Field) -> type[serializers.Serializer]:
    """A named wrapper serializer (``{"namespace": {...}}``) so the OpenAPI schema shows Gofer's response names."""
    if name not in _envelopes:
        _envelopes[name] = type(name, (serializers.Serializer,), dict(fields))
    return _envelopes[name]


class ErrorSerializer(serializers.Serializer):
    error_code = serializers.CharField()
    message = serializers.CharField()
    request_id = serializers.CharField()
    errors = serializers.ListField(child=serializers.DictField(child=serializers.CharField()))


class UnchangedSerializer(serializers.Serializer):
    changed = serializers.BooleanField()
    message = serializers.CharField()
