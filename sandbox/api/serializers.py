"""Wire shape of POST /api/sandbox."""

from rest_framework import serializers

from access.api.serializers import TokenSerializer
from kernel.api.serializers import envelope
from pipelines.api.serializers import NamespaceQuotasSerializer, NamespaceSerializer

SandboxResponse = envelope(
    "SandboxResponse",
    namespace=NamespaceSerializer(),
    quotas=NamespaceQuotasSerializer(),
    secret=serializers.CharField(help_text="The token's secret: shown once, kept nowhere."),
    token_details=TokenSerializer(),
)
