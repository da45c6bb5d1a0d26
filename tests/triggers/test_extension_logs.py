"""``GET (websocket) /api/extensions/{extension_id}/logs``: the trigger's firing decisions, streamed; scoped."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from gofer_site.asgi import application
from tests.triggers.conftest import SUBSCRIPTIONS, subscription
from triggers import firing


async def read_lines(caller, path: str, count: int) -> list:
    headers = [(b"host", b"127.0.0.1:8080"), (b"authorization", f"Bearer {caller.token}".encode())]
    communicator = WebsocketCommunicator(application, path, headers=headers)
    try:
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        return [await communicator.receive_from(timeout=10) for _ in range(count)]
    finally:
        await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_an_admin_follows_the_firing_decisions(builtins, pipeline, alice, admin):
    await sync_to_async(alice.post)(
        SUBSCRIPTIONS, {"extension_id": "interval", "subscription_id": "often", "settings": {"every": "10s"}}
    )

    def fire() -> None:
        due = subscription(pipeline, "interval", "often").next_fire_at
        firing.tick(due + dt.timedelta(milliseconds=10))

    await sync_to_async(fire)()
    frames = await read_lines(admin, "/api/extensions/interval/logs?format=json", 4)
    texts = [json.loads(f)["text"] for f in frames]
    assert texts[0] == "installed"
    assert any("subscribed" in t for t in texts)
    assert any(t.startswith("team-a/build often: fired for ") and "started run 1" in t for t in texts)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_tenant_without_the_extensions_permission_is_refused(builtins, alice):
    headers = [(b"host", b"127.0.0.1:8080"), (b"authorization", f"Bearer {alice.token}".encode())]
    communicator = WebsocketCommunicator(application, "/api/extensions/interval/logs", headers=headers)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    assert json.loads(await communicator.receive_from(timeout=10))["error_code"] == "permission_denied"
    closed = await communicator.receive_output(timeout=10)
    assert closed["code"] == 4403
    await communicator.disconnect()
