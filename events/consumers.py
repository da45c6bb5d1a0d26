"""``GET (websocket) /api/events?history=bool&reverse=bool``: past events, then live ones, scoped to the caller.

Live events are read from the database (where scoping applies) only when the listener is woken, and otherwise once
every SAFETY_POLL_SECONDS, so an idle listener costs next to nothing. Two things wake it:

- the Channels layer: ``events.services.publish`` sends one group message per committed event (through Redis when
  configured, so from any process; the embedded in-process layer carries only this server process's own events);
- the process's ``Watcher``: one task per server process, running while the process has listeners, that looks at
  the events table every WATCH_SECONDS (one cheap indexed query, whatever the number of listeners) and wakes them
  all when something appeared that no push announced (a worker's event without Redis). That bounds how late a
  worker's event reaches a listener without Redis: about WATCH_SECONDS plus one read.

Ids grow with insertion but a transaction can commit after a later one; the listener therefore re-reads a short
window behind its position and drops ids it has already sent: nothing is missed, nothing is sent twice. When the
client goes away the consumer stops (Gofer's stream kept running; a roadmap item). When its token's roles change,
the base consumer replaces ``self.principal`` and the stream re-scopes at its next read.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from django.db.models import Count, Max, Q
from django.utils import timezone

from events.models import Event
from events.services import EVENTS_GROUP, as_api, visible_events
from kernel.api.views import rule
from kernel.api.websockets import GoferWebsocketConsumer
from kernel.choices import Action, Resource
from kernel.errors import GoferError, ValidationFailed

logger = logging.getLogger(__name__)

# An idle listener reads the database this rarely; every event is announced by a push or the watcher before that.
SAFETY_POLL_SECONDS = 15
# How often each server process's watcher looks for events no push announced.
WATCH_SECONDS = 1.0
LOOKBACK_SECONDS = 30
HISTORY_PAGE = 200
# The events visible to a principal depend on the namespaces and pipelines that exist; recompute now and then.
SCOPE_REFRESH_SECONDS = 30


def _table_signature() -> tuple[int, int | None]:
    """How many events were emitted in the look-back window, and the largest id among them: a new event (also one
    whose transaction committed late) changes it."""
    window = timezone.now() - dt.timedelta(seconds=LOOKBACK_SECONDS)
    found = Event.objects.filter(emitted__gte=window).aggregate(count=Count("id"), top=Max("id"))
    return found["count"], found["top"]


class Watcher:
    """Wakes this process's listeners when the events table changes; one per server process (``WATCHER``)."""

    def __init__(self) -> None:
        self.listeners: set[asyncio.Event] = set()
        self._task: asyncio.Task | None = None
        self._wake_all = False

    def add(self, wake: asyncio.Event) -> None:
        """Watch for ``wake``'s listener. Its first wake comes at the next look, so nothing committed between its
        start and the watcher's first signature is missed."""
        self.listeners.add(wake)
        self._wake_all = True
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._run())

    def discard(self, wake: asyncio.Event) -> None:
        self.listeners.discard(wake)

    async def _run(self) -> None:
        last = None
        while self.listeners:
            try:
                current = await database_sync_to_async(_table_signature)()
            except Exception:
                logger.warning("the events watcher could not read the events table", exc_info=True)
                current = last
            if self._wake_all or (last is not None and current != last):
                self._wake_all = False
                for wake in list(self.listeners):
                    wake.set()
            last = current
            await asyncio.sleep(WATCH_SECONDS)


WATCHER = Watcher()


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
        WATCHER.add(self.wake)
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

    def _rescope(self, cursor: int) -> tuple[Any, set[int], int]:
        """The events visible to the new principal, those of them already committed in the look-back window, and
        the id to continue after."""
        queryset = self._visible()
        top = queryset.order_by("-id").values_list("id", flat=True).first() or 0
        window = timezone.now() - dt.timedelta(seconds=LOOKBACK_SECONDS)
        already = set(queryset.filter(id__lte=top, emitted__gte=window).values_list("id", flat=True))
        return queryset, already, max(cursor, top)

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
            scoped_for = self.principal
            visible = await database_sync_to_async(self._visible)()
            loop = asyncio.get_running_loop()
            refreshed = loop.time()
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=SAFETY_POLL_SECONDS)
                self.wake.clear()
                if self.principal != scoped_for:
                    # New roles: what they newly show that had already happened is history, not live.
                    scoped_for = self.principal
                    visible, already, cursor = await database_sync_to_async(self._rescope)(cursor)
                    sent.update(dict.fromkeys(already - sent.keys(), timezone.now()))
                    refreshed = loop.time()
                elif loop.time() - refreshed > SCOPE_REFRESH_SECONDS:
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
        wake = getattr(self, "wake", None)
        if wake is not None:
            WATCHER.discard(wake)
        if self.channel_layer is not None:
            await self.channel_layer.group_discard(EVENTS_GROUP, self.channel_name)
