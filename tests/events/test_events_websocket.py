"""The /api/events websocket on a real daphne server: history, live events, tenant scoping."""

from __future__ import annotations

import json
import time

import pytest
from websockets.sync.client import connect

from pipelines import services as pipelines
from tests.support.processes import Server

pytestmark = [pytest.mark.slow]


@pytest.fixture
def server(transactional_db):
    process = Server()
    yield process
    process.stop()


def frames(ws, count: int, timeout: float = 10) -> list[dict]:
    return [json.loads(ws.recv(timeout=timeout)) for _ in range(count)]


def kinds(events: list[dict]) -> list[str]:
    return [next(iter(e["kind"])) for e in events]


def test_history_then_live_events_arrive_in_order_and_scoped(server, alice, namespaces):
    url = f"{server.ws_url}/api/events?history=true"
    with connect(url, additional_headers={"Authorization": f"Bearer {alice.token}"}, open_timeout=10) as ws:
        past = frames(ws, 1)
        # alice sees team-a's creation, not team-b's, nor the admin-only role and token events.
        assert past[0]["kind"] == {"created_namespace": {"namespace_id": "team-a"}}
        pipelines.create_namespace("team-a-2", "x", "")  # not alice's: ^team-a$ does not match team-a-2
        namespace = pipelines.Namespace.objects.get(id="team-a")
        pipelines.update_namespace(namespace, name="Team A renamed")
        live = frames(ws, 1)
        assert kinds(live) == ["updated_namespace"]
        assert int(live[0]["id"]) > int(past[0]["id"])
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1.5)  # nothing else is visible to alice


def test_without_history_only_new_events_arrive(server, admin):
    pipelines.create_namespace("before", "Before", "")
    with connect(f"{server.ws_url}/api/events", additional_headers={"Authorization": f"Bearer {admin.token}"}) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1.5)
        pipelines.create_namespace("after", "After", "")
        assert frames(ws, 1)[0]["kind"] == {"created_namespace": {"namespace_id": "after"}}


def test_reverse_without_history_is_refused_naming_the_parameter(server, admin):
    url = f"{server.ws_url}/api/events?reverse=true"
    with connect(url, additional_headers={"Authorization": f"Bearer {admin.token}"}) as ws:
        error = json.loads(ws.recv(timeout=10))
        assert error["error_code"] == "validation_error"
        assert error["errors"][0]["field"] == "reverse"
        with pytest.raises(Exception) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == 4400


def test_events_stream_needs_a_token(server):
    with connect(f"{server.ws_url}/api/events") as ws:
        assert json.loads(ws.recv(timeout=10))["error_code"] == "unauthenticated"


def test_an_event_written_by_another_process_reaches_the_listener_within_a_few_seconds(server, admin):
    """This test process stands for a worker: without Redis its push cannot reach the server's in-memory layer."""
    with connect(f"{server.ws_url}/api/events", additional_headers={"Authorization": f"Bearer {admin.token}"}) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1)
        written = time.monotonic()
        pipelines.create_namespace("from-a-worker", "W", "")
        assert frames(ws, 1, timeout=5)[0]["kind"] == {"created_namespace": {"namespace_id": "from-a-worker"}}
        assert time.monotonic() - written < 3
