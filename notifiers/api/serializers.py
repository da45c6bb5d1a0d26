"""The deliveries list (ours, in the v0 style: times in epoch milliseconds, snake_case)."""

from __future__ import annotations

from rest_framework import serializers

from kernel.api.serializers import EpochMsField, envelope


class DeliverySerializer(serializers.Serializer):
    """One attempt to deliver one notice; never a credential (errors and answers are masked)."""

    id = serializers.IntegerField()
    notice_id = serializers.IntegerField()
    run_id = serializers.IntegerField(source="notice.run.number")
    notice = serializers.CharField(source="notice.kind", help_text="triggered, recovered or started")
    rule = serializers.CharField(source="notice.rule")
    description = serializers.CharField(source="notice.description")
    notice_state = serializers.CharField(source="notice.state")
    attempt = serializers.IntegerField()
    started = EpochMsField()
    duration_ms = serializers.IntegerField()
    outcome = serializers.CharField(help_text="succeeded, retrying or failed")
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField()
    response = serializers.CharField(help_text="The first 512 bytes of the answer, secrets masked.")
    retry_at = EpochMsField()


ListDeliveriesResponse = envelope("ListDeliveriesResponse", deliveries=DeliverySerializer(many=True))
