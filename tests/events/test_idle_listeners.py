"""Idle /api/events listeners cost nothing but a slow safety read: they are woken by the Channels layer when an event
is published, and by one watcher per server process when an event appears that no push announced (a worker in
another process without Redis). Through the real ASGI application, in this process."""

from __future__ import annotations

import json
import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from events import services as events
from events.consumers import EventsConsumer
from events.models import Event
from gofer_site.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture(autouse=True)
def _committed(transactional_db):
    """Consumers read the database from other threads: what the test creates must be committed."""


def headers(caller) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"127.0.0.1:8080"), (b"authorization", f"Bearer {caller.token}".encode())]


@pytest.fixture
def reads(monkeypatch) -> list[float]:
    """When each listener read new events from the database."""
    seen: list[float] = []
    original = EventsConsumer._since

    def counting(self, cursor, visible):
        seen.append(time.monotonic())
        return original(self, cursor, visible)

    monkeypatch.setattr(EventsConsumer, "_since", counting)
    return seen


async def listener(caller) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, "/api/events", headers=headers(caller))
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    return communicator


async def test_an_idle_listener_does_not_read_the_database_every_half_second(admin, reads):
    communicator = await listener(admin)
    try:
        assert await communicator.receive_nothing(timeout=4)
    finally:
        await communicator.disconnect()
    # Once after joining (the watcher's first look), then nothing until the safety read, 15 s later.
    assert len(reads) <= 1, reads


async def test_a_published_event_wakes_the_listener_at_once(admin):
    communicator = await listener(admin)
    try:
        assert await communicator.receive_nothing(timeout=0.5)
        published = time.monotonic()
        await database_sync_to_async(events.publish)("created_namespace", {"namespace_id": "pushed"})
        frame = json.loads(await communicator.receive_from(timeout=5))
        assert frame["kind"] == {"created_namespace": {"namespace_id": "pushed"}}
        assert time.monotonic() - published < 1
    finally:
        await communicator.disconnect()


async def test_an_event_no_push_announced_still_arrives_within_a_few_seconds(admin):
    """What a worker in another process writes, with the in-process Channels layer that cannot carry its push."""
    communicator = await listener(admin)
    try:
        assert await communicator.receive_nothing(timeout=0.5)
        written = time.monotonic()
        await database_sync_to_async(Event.objects.create)(kind="created_namespace", details={"namespace_id": "quiet"})
        frame = json.loads(await communicator.receive_from(timeout=5))
        assert frame["kind"] == {"created_namespace": {"namespace_id": "quiet"}}
        assert time.monotonic() - written < 3
    finally:
        await communicator.disconnect()


async def test_a_process_with_no_listener_on_the_in_memory_layer_sends_it_nothing(monkeypatch, settings):
    """A worker process (no websocket in it) publishing on the embedded default's in-process layer: a send would
    reach nobody, and costs an event loop round trip per event on the engine's path."""
    from channels.layers import InMemoryChannelLayer, channel_layers

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    layer = channel_layers["default"]
    assert isinstance(layer, InMemoryChannelLayer)
    sent: list[dict] = []
    real_send = layer.group_send

    async def recording(group, message):
        sent.append(message)
        await real_send(group, message)

    monkeypatch.setattr(layer, "group_send", recording)
    await database_sync_to_async(events.publish)("created_namespace", {"namespace_id": "nobody-listens"})
    assert sent == []
    await layer.group_add(events.EVENTS_GROUP, "a-listener")  # now someone in this process listens
    await database_sync_to_async(events.publish)("created_namespace", {"namespace_id": "heard"})
    assert [message["type"] for message in sent] == ["events.new"]
    channel_layers.backends.clear()
