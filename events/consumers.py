"""``GET (websocket) /api/events?history=bool&reverse=bool``: past events, then live ones, scoped to the caller.

Live events are read from the database (where scoping applies) when the channel layer says new ones exist, and at
least every POLL_SECONDS in any case, so a worker in another process reaches listeners even without Redis. Ids grow
with insertion but a transaction can commit after a later one; the listener therefore re-reads a short window
behind its position and drops ids it has already sent: nothing is missed, nothing is sent twice. When the client
goes away the consumer stops (Gofer's stream kept running; a roadmap item).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from django.db.models import Q
from django.utils import timezone

from events.services import EVENTS_GROUP, as_api, visible_events
from kernel.api.views import rule
from kernel.api.websockets import GoferWebsocketConsumer
from kernel.choices import Action, Resource
from kernel.errors import GoferError, ValidationFailed

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
LOOKBACK_SECONDS = 30
HISTORY_PAGE = 200
# The events visible to a principal depend on the namespaces and pipelines that exist; recompute now and then.
SCOPE_REFRESH_SECONDS = 30


class EventsConsumer(GoferWebsocketConsumer):
    rule = rule(Action.READ, Resource.EVENTS)

    async def open(self) -> None:
        try:
            self.history = self.bool_param("history", False)
            self.reverse = self.bool_param("reverse", False)
            if self.reverse and not self.history:
                raise ValidationFailed("reverse: only with history=true (live events arrive in order)", field="reverse")
        except GoferError as error:
            await self.fail(error)
            return
        self.wake = asyncio.Event()
        if self.channel_layer is not None:
            await self.channel_layer.group_add(EVENTS_GROUP, self.channel_name)
        self.streamer = asyncio.create_task(self._stream())

    async def events_new(self, message: dict[str, Any]) -> None:
        wake = getattr(self, "wake", None)
        if wake is not None:
            wake.set()

    def _visible(self) -> Any:
        return visible_events(self.principal)

    def _since(self, cursor: int, visible: Any) -> list[Any]:
        window = timezone.now() - dt.timedelta(seconds=LOOKBACK_SECONDS)
        return list(visible.filter(Q(id__gt=cursor) | Q(emitted__gte=window)).order_by("id")[:1000])

    def _start(self) -> tuple[list[dict[str, Any]], int, set[int]]:
        """History to replay (if asked), the id to continue after, and the ids already accounted for."""
        queryset = self._visible()
        cursor = queryset.order_by("-id").values_list("id", flat=True).first() or 0
        past: list[dict[str, Any]] = []
        if self.history:
            ordered = queryset.filter(id__lte=cursor).order_by("-id" if self.reverse else "id")
            past = [as_api(e) for e in ordered.iterator(chunk_size=HISTORY_PAGE)]
        # Events already committed when we started are history: sent above, or not wanted. Only what commits from
        # now on is live, even if its id is lower than the cursor (a transaction that committed late).
        window = timezone.now() - dt.timedelta(seconds=LOOKBACK_SECONDS)
        seen = set(queryset.filter(id__lte=cursor, emitted__gte=window).values_list("id", flat=True))
        return past, cursor, seen

    async def _stream(self) -> None:
        try:
            past, cursor, seen = await database_sync_to_async(self._start)()
            for event in past:
                await self.send(text_data=json.dumps(event))
            sent: dict[int, dt.datetime] = dict.fromkeys(seen, timezone.now())
            visible = await database_sync_to_async(self._visible)()
            loop = asyncio.get_running_loop()
            refreshed = loop.time()
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=POLL_SECONDS)
                self.wake.clear()
                if loop.time() - refreshed > SCOPE_REFRESH_SECONDS:
                    visible = await database_sync_to_async(self._visible)()
                    refreshed = loop.time()
                for event in await database_sync_to_async(self._since)(cursor, visible):
                    if event.id in sent:
                        continue
                    await self.send(text_data=json.dumps(as_api(event)))
                    sent[event.id] = timezone.now()
                    cursor = max(cursor, event.id)
                horizon = timezone.now() - dt.timedelta(seconds=LOOKBACK_SECONDS * 2)
                for event_id in [i for i, at in sent.items() if at < horizon]:
                    del sent[event_id]
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("event stream failed")
            await self.close(code=1011)

    async def disconnect(self, code: int) -> None:
        streamer = getattr(self, "streamer", None)
        if streamer is not None:
            streamer.cancel()
        if self.channel_layer is not None:
            await self.channel_layer.group_discard(EVENTS_GROUP, self.channel_name)
