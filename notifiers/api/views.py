"""``GET .../pipelines/{pipeline_id}/subscriptions/{extension_id}/{subscription_id}/deliveries`` (ours): a
notifier subscription's delivery attempts, newest first, paginated like every list. Scoped like the subscription
itself: another tenant's pipeline or subscription is a 404."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from kernel.api.pagination import page_from
from kernel.api.views import GoferAPIView, ok, rule
from kernel.choices import Action, Resource
from notifiers import services
from notifiers.api import serializers as s
from triggers import services as triggers

PAGE_PARAMETERS = [
    OpenApiParameter("limit", int, description="At most 500; default 50."),
    OpenApiParameter("offset", int),
    OpenApiParameter("reverse", bool, description="Oldest first."),
]


class DeliveryListView(GoferAPIView):
    rules = {"GET": rule(Action.READ, Resource.SUBSCRIPTIONS)}

    @extend_schema(
        operation_id="list_subscription_deliveries",
        parameters=PAGE_PARAMETERS,
        responses=s.ListDeliveriesResponse,
        tags=["Subscriptions"],
    )
    def get(
        self, request: Request, namespace_id: str, pipeline_id: str, extension_id: str, subscription_id: str
    ) -> Response:
        subscription = triggers.get_subscription(self.pipeline, extension_id, subscription_id)
        page = page_from(request)
        deliveries = page.apply(services.deliveries_of(subscription), "-id")
        return ok({"deliveries": s.DeliverySerializer(deliveries, many=True).data})
