"""Recording and broadcasting events."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import functools
import logging
import os
import threading
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction
from django.db.models import QuerySet

from events.choices import EventKind
from events.models import Event
from kernel import scope
from kernel.choices import Action, Resource
from kernel.errors import NotFound
from kernel.rbac import Principal
from kernel.times import epoch_ms

logger = logging.getLogger(__name__)

# Every websocket listener of /api/events joins this group; a message only says "new events exist", listeners then
# read them from the database, where scoping is applied (docs/architecture.md, "Live streams").
EVENTS_GROUP = "gofer.events"


def publish(
    kind: EventKind | str,
    details: dict[str, Any],
    *,
    namespace_id: str | None = None,
    pipeline_slug: str | None = None,
    run_number: int | None = None,
) -> Event:
    """Record an event in the caller's transaction; wake live listeners once that transaction commits.

    If the transaction rolls back, the event never existed and nobody was told.
    """
    event = Event.objects.create(
        kind=str(kind),
        details=details,
        namespace_id=namespace_id,
        pipeline_slug=pipeline_slug,
        run_number=run_number,
    )
    transaction.on_commit(lambda: _wake_listeners(event.id))
    return event


def delete_event(event_id: int) -> None:
    """Delete one event (admin). Raises NotFound if there is none with this id."""
    deleted, _ = Event.objects.filter(id=event_id).delete()
    if not deleted:
        raise NotFound.of("event", event_id, field="event_id")


def prune_events(*, before: dt.datetime) -> int:
    """Delete every event emitted before ``before`` (retention); returns how many."""
    deleted, _ = Event.objects.filter(emitted__lt=before).delete()
    return deleted


def _wake_listeners(event_id: int) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    if isinstance(layer, InMemoryChannelLayer) and not layer.groups.get(EVENTS_GROUP):
        # An in-memory layer reaches this process only, and nobody here listens (a worker process, say): a send
        # would cost an event loop round trip for no one. Listeners elsewhere find the event by polling.
        return
    message = {"type": "events.new", "event_id": event_id}
    if not isinstance(layer, InMemoryChannelLayer) and not _under_an_event_loop():
        # A worker process: async_to_sync would make a new event loop for this one send, and channels_redis a new
        # connection with it (~4 ms an event on the engine's path). One loop per process, kept, sends instead,
        # without waiting: listeners also poll, so a send still in flight when the process dies is only late.
        future = asyncio.run_coroutine_threadsafe(layer.group_send(EVENTS_GROUP, message), _sending_loop())
        future.add_done_callback(functools.partial(_log_failed_send, event_id))
        return
    try:
        async_to_sync(layer.group_send)(EVENTS_GROUP, message)
    except Exception:
        # Listeners also poll; a broken channel layer delays them, it must never fail the state change itself.
        logger.warning("could not broadcast event %s to the channel layer", event_id, exc_info=True)


def _under_an_event_loop() -> bool:
    """Whether this thread was started by ``sync_to_async`` under a running loop (the server): async_to_sync then
    sends on that loop, whose connections the layer keeps."""
    threadlocal = SyncToAsync.threadlocal
    loop = getattr(threadlocal, "main_event_loop", None)
    return loop is not None and getattr(threadlocal, "main_event_loop_pid", None) == os.getpid()


_loops: dict[int, asyncio.AbstractEventLoop] = {}  # by process id: a forked worker starts its own
_loops_lock = threading.Lock()


def _sending_loop() -> asyncio.AbstractEventLoop:
    """This process's event loop for channel-layer sends, running in a daemon thread (started on first use)."""
    pid = os.getpid()
    with _loops_lock:
        loop = _loops.get(pid)
        if loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="gofer-events-layer", daemon=True).start()
            _loops[pid] = loop
    return loop


def _log_failed_send(event_id: int, future: concurrent.futures.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("could not broadcast event %s to the channel layer", event_id, exc_info=future.exception())


def visible_events(principal: Principal) -> QuerySet:
    """Events the principal may read: those of namespaces (and pipelines) it can read events in, plus, for admins,
    system events (which have no namespace). Deleted pipelines' events stay readable: the match is on the ids the
    events carry, not on rows that still exist."""
    return scope.restrict(Event.objects.all(), principal, Action.READ, (Resource.EVENTS,))


def as_api(event: Event) -> dict[str, Any]:
    """Gofer v0's shape: ``{"id", "kind": {<kind>: details}, "emitted"}``."""
    return {"id": str(event.id), "kind": {event.kind: event.details}, "emitted": epoch_ms(event.emitted)}
