"""Events over HTTP: a paginated list and single events. The live stream is the websocket at the same path."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from events import services
from kernel.api.pagination import page_from, parse_int
from kernel.api.views import GoferAPIView, no_content, ok, rule
from kernel.choices import Action, Resource
from kernel.errors import NotFound
from kernel.identifiers import strict_int

EventShape = inline_serializer(
    "Event", {"id": serializers.CharField(), "kind": serializers.DictField(), "emitted": serializers.IntegerField()}
)


def _event_id(raw: str) -> int:
    try:
        return strict_int(raw)
    except ValueError:
        raise NotFound.of("event", raw, field="event_id") from None


class EventListView(GoferAPIView):
    rules = {"GET": rule(Action.READ, Resource.EVENTS)}

    @extend_schema(
        operation_id="list_events",
        description="Events visible to the caller, oldest first (``reverse=true`` for newest first). "
        "``after`` returns only events with a larger id. Open the same path as a websocket to follow live.",
        parameters=[OpenApiParameter("after", int)],
        responses=inline_serializer("ListEventsResponse", {"events": EventShape}),
        tags=["Events"],
    )
    def get(self, request: Request) -> Response:
        page = page_from(request)
        queryset = services.visible_events(self.principal)
        after = request.query_params.get("after")
        if after not in (None, ""):
            queryset = queryset.filter(id__gt=parse_int(after, "after", 0, 0))
        return ok({"events": [services.as_api(e) for e in page.apply(queryset, "id")]})


class EventDetailView(GoferAPIView):
    rules = {"GET": rule(Action.READ, Resource.EVENTS), "DELETE": rule(Action.DELETE, Resource.EVENTS, admin=True)}

    @extend_schema(
        operation_id="get_event",
        responses=inline_serializer("GetEventResponse", {"event": EventShape}),
        tags=["Events"],
    )
    def get(self, request: Request, event_id: str) -> Response:
        event = services.visible_events(self.principal).filter(id=_event_id(event_id)).first()
        if event is None:
            raise NotFound.of("event", event_id, field="event_id")
        return ok({"event": services.as_api(event)})

    @extend_schema(operation_id="delete_event", responses={204: None}, tags=["Events"])
    def delete(self, request: Request, event_id: str) -> Response:
        services.delete_event(_event_id(event_id))
        return no_content()
