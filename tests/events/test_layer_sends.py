"""How events reach the Channels layer from a process without an event loop (a worker), with the real Redis."""

from __future__ import annotations

import asyncio

import pytest

from events import services as events


def _redis_reachable() -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.django_db(transaction=True)
def test_a_worker_process_sends_events_to_the_redis_layer_on_one_kept_loop(settings, monkeypatch):
    """A worker process has no event loop: each send through async_to_sync made a new loop, and channels_redis a
    new connection, per event. The send goes through one kept loop instead, and still reaches the listeners."""
    import uuid

    from channels.layers import channel_layers

    from tests.conftest import need

    need(_redis_reachable(), "Redis is not running on 127.0.0.1:6379 (see docs/development.md)")
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"], "prefix": f"gofer-test-{uuid.uuid4().hex[:8]}"},
        }
    }
    channel_layers.backends.clear()
    layer = channel_layers["default"]

    def no_new_loop_per_send(*args, **kwargs):
        raise AssertionError("a worker's event went through async_to_sync: a new event loop and connection per send")

    monkeypatch.setattr(events, "async_to_sync", no_new_loop_per_send)

    async def listen_while_a_worker_publishes() -> list:
        channel = await layer.new_channel()
        await layer.group_add(events.EVENTS_GROUP, channel)
        loops = []
        for n in range(2):
            # A plain thread, as a worker's: no event loop around it (asyncio.to_thread is not sync_to_async).
            event = await asyncio.to_thread(events.publish, "created_namespace", {"namespace_id": f"sent-{n}"})
            loops.append(events._sending_loop())
            message = await asyncio.wait_for(layer.receive(channel), 10)
            assert message == {"type": "events.new", "event_id": event.id}
        return loops

    try:
        loops = asyncio.run(listen_while_a_worker_publishes())
        assert loops[0] is loops[1] and loops[0].is_running()
    finally:
        channel_layers.backends.clear()
