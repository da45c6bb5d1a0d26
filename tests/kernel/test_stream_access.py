"""Access to an open websocket stream, on a real daphne server: a token that is revoked loses its open streams (4401),
roles that change take effect in them, and a token may hold only so many streams at once.

The mechanism is the base consumer's (kernel/api/websockets.py), so it is shown here on the events stream, and for
logs and attach in tests/runs/test_stream_revocation.py.
"""

from __future__ import annotations

import json
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from access import services as access
from access.models import Token
from pipelines import services as pipelines
from pipelines.models import Namespace
from tests.conftest import FULL, TENANT_RESOURCES
from tests.support.processes import Server

pytestmark = [pytest.mark.slow]


@pytest.fixture
def server(transactional_db):
    # Only the push can close a stream within seconds here: the periodic re-check is five minutes away.
    process = Server(GOFER_STREAM_RECHECK_SECONDS="300")
    yield process
    process.stop()


def events_socket(server: Server, caller, history: bool = False):
    url = f"{server.ws_url}/api/events" + ("?history=true" if history else "")
    return connect(url, additional_headers={"Authorization": f"Bearer {caller.token}"}, open_timeout=10)


def api(server: Server, caller, method: str, path: str, body=None) -> requests.Response:
    response = requests.request(
        method, f"{server.url}{path}", json=body, headers={"Authorization": f"Bearer {caller.token}"}, timeout=10
    )
    assert response.status_code < 300, response.text
    return response


def closing(ws, timeout: float = 10) -> tuple[list[dict], int]:
    """Every frame until the server closes the socket, and the close code."""
    frames = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            frames.append(json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic()))))
        except ConnectionClosed as closed:
            return frames, closed.rcvd.code if closed.rcvd else closed.code
        except TimeoutError:
            break
    raise AssertionError(f"the stream was not closed within {timeout} s; frames: {frames}")


def stays_open(ws, seconds: float) -> list[dict]:
    frames = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            frames.append(json.loads(ws.recv(timeout=max(0.05, deadline - time.monotonic()))))
        except TimeoutError:
            break
    return frames


def test_disabling_a_token_closes_its_open_event_stream_at_once_with_4401(server, admin, alice):
    with events_socket(server, alice) as ws:
        assert stays_open(ws, 0.5) == []
        started = time.monotonic()
        api(server, admin, "PATCH", f"/api/tokens/{alice.token_id}", {"disabled": True})
        frames, code = closing(ws)
        assert time.monotonic() - started < 5
    assert code == 4401
    assert frames[-1]["error_code"] == "unauthenticated"
    assert "disabled" in frames[-1]["message"]


def test_deleting_a_token_closes_its_open_event_stream_with_4401(server, admin, alice):
    with events_socket(server, alice) as ws:
        assert stays_open(ws, 0.5) == []
        api(server, admin, "DELETE", f"/api/tokens/{alice.token_id}")
        frames, code = closing(ws)
    assert code == 4401
    assert frames[-1]["error_code"] == "unauthenticated"


def test_a_role_that_no_longer_grants_the_stream_closes_it_with_what_a_handshake_would_get(server, admin, bob):
    with events_socket(server, bob) as ws:
        assert stays_open(ws, 0.5) == []
        api(
            server,
            admin,
            "PATCH",
            "/api/roles/team-a-read",
            {"permissions": [{"resources": ["namespaces:^team-a$", "pipelines:.*", "runs"], "actions": ["read"]}]},
        )
        frames, code = closing(ws)
    assert code == 4403
    assert frames[-1]["error_code"] == "permission_denied"


def test_a_role_that_changes_its_namespaces_rescopes_the_open_stream(server, admin, alice):
    with events_socket(server, alice) as ws:
        assert stays_open(ws, 0.5) == []
        moved = [{"resources": ["namespaces:^team-b$", "pipelines:.*", *TENANT_RESOURCES], "actions": FULL}]
        api(server, admin, "PATCH", "/api/roles/team-a-full", {"permissions": moved})
        time.sleep(1)  # the push reaches the stream; it re-checks and takes the new roles
        api(server, admin, "PATCH", "/api/namespaces/team-a", {"name": "A, no longer alice's"})
        api(server, admin, "PATCH", "/api/namespaces/team-b", {"name": "B, now alice's"})
        frames = stays_open(ws, 3)
    assert [f["kind"] for f in frames] == [{"updated_namespace": {"namespace_id": "team-b"}}], frames


def test_a_token_disabled_by_another_process_loses_its_streams_at_the_periodic_recheck(transactional_db, alice):
    process = Server(GOFER_STREAM_RECHECK_SECONDS="1")
    try:
        with events_socket(process, alice) as ws:
            assert stays_open(ws, 0.5) == []
            # This process's Channels layer is its own memory: the push cannot reach the server.
            access.set_token_disabled(Token.objects.get(pk=alice.token_id), True)
            frames, code = closing(ws, timeout=8)
    finally:
        process.stop()
    assert code == 4401
    assert "disabled" in frames[-1]["message"]


def test_a_token_that_expires_loses_its_open_streams(transactional_db, namespaces):
    process = Server(GOFER_STREAM_RECHECK_SECONDS="1")
    secret, _ = access.create_token("short-lived", ["admin"], expires_in=3)
    caller = type("Caller", (), {"token": secret})()
    try:
        with events_socket(process, caller) as ws:
            assert stays_open(ws, 0.5) == []
            frames, code = closing(ws, timeout=10)
    finally:
        process.stop()
    assert code == 4401
    assert "expired" in frames[-1]["message"]


def test_a_token_holds_at_most_the_configured_number_of_open_streams(transactional_db, alice, bob):
    process = Server(GOFER_MAX_STREAMS_PER_TOKEN="2")
    try:
        with events_socket(process, alice) as first, events_socket(process, alice) as second:
            assert stays_open(first, 0.3) == [] and stays_open(second, 0.3) == []
            with events_socket(process, alice) as third:
                frames, code = closing(third)
            assert code == 4429
            assert frames[-1]["error_code"] == "rate_limited"
            assert "GOFER_MAX_STREAMS_PER_TOKEN" in frames[-1]["message"]
            # Another token has streams of its own.
            with events_socket(process, bob) as other:
                assert stays_open(other, 0.5) == []
            # A stream that closes frees its place.
            first.close()
            time.sleep(0.5)
            with events_socket(process, alice) as again:
                assert stays_open(again, 0.5) == []
    finally:
        process.stop()


def test_a_revoked_stream_receives_nothing_after_its_close(server, admin, alice):
    """Events that happen after the revocation are not sent on the dying stream."""
    with events_socket(server, alice) as ws:
        assert stays_open(ws, 0.5) == []
        api(server, admin, "PATCH", f"/api/tokens/{alice.token_id}", {"disabled": True})
        pipelines.update_namespace(Namespace.objects.get(id="team-a"), name="after the revocation")
        frames, code = closing(ws)
    assert code == 4401
    assert [f.get("error_code") for f in frames] == ["unauthenticated"]


def test_an_unknown_websocket_path_is_a_4404_close_not_a_500(server):
    with connect(f"{server.ws_url}/api/no/such/stream", open_timeout=10) as ws:
        frames, code = closing(ws)
    assert code == 4404
    assert frames[-1]["error_code"] == "not_found"
    assert "Traceback" not in server.output()
