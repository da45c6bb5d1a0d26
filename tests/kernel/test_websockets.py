"""The websocket side of the v0 protocol, through the real ASGI application (origin check, router, consumers): the
Origin rule, authentication, the API version header and NUL characters, each answered like the HTTP routes answer
them (one error frame in the Gofer shape, then close code 4000 + status)."""

from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator

from gofer_site.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

TASK = "/api/namespaces/team-a/pipelines/build/runs/1/tasks/compile"


@pytest.fixture(autouse=True)
def _committed(transactional_db):
    """Consumers read the database from other threads: what the test creates must be committed."""


def headers(caller=None, *, origin: str | None = None, version: str | None = None) -> list[tuple[bytes, bytes]]:
    out = [(b"host", b"127.0.0.1:8080")]
    if caller is not None:
        out.append((b"authorization", f"Bearer {caller.token}".encode()))
    if origin is not None:
        out.append((b"origin", origin.encode()))
    if version is not None:
        out.append((b"gofer-api-version", version.encode()))
    return out


async def refusal(path: str, header_list) -> tuple[dict, int]:
    """Connect, expect the handshake to be accepted, and return the error frame and the close code that follow."""
    communicator = WebsocketCommunicator(application, path, headers=header_list)
    try:
        connected, _ = await communicator.connect(timeout=10)
        assert connected, path
        frame = json.loads(await communicator.receive_from(timeout=10))
        closed = await communicator.receive_output(timeout=10)
        assert closed["type"] == "websocket.close", closed
        return frame, closed["code"]
    finally:
        await communicator.disconnect()


async def stays_open(path: str, header_list) -> bool:
    """Whether the socket is accepted and then stays quiet (no error frame, no close) for a moment."""
    communicator = WebsocketCommunicator(application, path, headers=header_list)
    try:
        connected, _ = await communicator.connect(timeout=10)
        return connected and await communicator.receive_nothing(timeout=0.5)
    finally:
        await communicator.disconnect()


# --- Origin ----------------------------------------------------------------------------------------------------------


async def test_a_client_without_origin_is_accepted(admin):
    assert await stays_open("/api/events", headers(admin))


async def test_a_page_of_this_server_is_accepted(admin):
    assert await stays_open("/api/events", headers(admin, origin="http://127.0.0.1:8080"))


async def test_a_foreign_origin_is_refused_at_the_handshake(admin):
    communicator = WebsocketCommunicator(application, "/api/events", headers=headers(admin, origin="https://evil.test"))
    connected, _ = await communicator.connect(timeout=10)
    assert not connected
    await communicator.disconnect()


# --- authentication ----------------------------------------------------------------------------------------------


async def test_a_missing_token_is_an_unauthenticated_frame_and_4401(db):
    frame, code = await refusal("/api/events", headers())
    assert frame["error_code"] == "unauthenticated"
    assert "Authorization: Bearer" in frame["message"]
    assert frame["request_id"]
    assert code == 4401


async def test_an_unknown_token_is_unauthenticated(db):
    frame, code = await refusal("/api/events", [(b"authorization", b"Bearer not-a-real-token")])
    assert (frame["error_code"], code) == ("unauthenticated", 4401)
    assert "not recognised" in frame["message"]


async def test_an_outsider_gets_404_for_another_tenants_task(charlie, team_a_pipeline):
    frame, code = await refusal(f"{TASK}/logs", headers(charlie))
    assert (frame["error_code"], code) == ("not_found", 4404)


# --- the API version header ------------------------------------------------------------------------------------------


async def test_v0_is_served(admin):
    assert await stays_open("/api/events", headers(admin, version="v0"))


@pytest.mark.parametrize("version", ["v1", "V0", ""])
async def test_another_api_version_is_400_naming_the_header_like_http(admin, version):
    frame, code = await refusal("/api/events", headers(admin, version=version))
    assert frame["error_code"] == "unsupported_api_version"
    assert "gofer-api-version" in frame["message"]
    assert frame["errors"] == [{"field": "gofer-api-version", "message": "must be v0"}]
    assert code == 4400


async def test_the_version_is_checked_before_the_token_like_http(db):
    frame, code = await refusal(f"{TASK}/logs", headers(version="v2"))
    assert (frame["error_code"], code) == ("unsupported_api_version", 4400)


# --- NUL characters ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/namespaces/te%00am/pipelines/build/runs/1/tasks/compile/logs", "namespace_id"),
        ("/api/namespaces/team-a/pipelines/bu%00ild/runs/1/tasks/compile/logs", "pipeline_id"),
        ("/api/namespaces/team-a/pipelines/build/runs/1%00/tasks/compile/logs", "run_id"),
        ("/api/namespaces/team-a/pipelines/build/runs/1/tasks/a%00b/logs", "task_id"),
        ("/api/namespaces/team-a/pipelines/build/runs/1/tasks/a%00b/attach", "task_id"),
    ],
)
async def test_nul_in_a_path_parameter_is_400_naming_it(admin, team_a_pipeline, path, field):
    frame, code = await refusal(path, headers(admin))
    assert frame["error_code"] == "validation_error"
    assert frame["errors"] == [{"field": field, "message": f"{field}: must not contain NUL characters"}]
    assert code == 4400


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"{TASK}/attach?command=/bin/sh%00-x", "command"),
        (f"{TASK}/logs?format=raw%00", "format"),
        (f"{TASK}/logs?offset=1%00", "offset"),
        ("/api/events?history=true%00", "history"),
        ("/api/events?unknown=a%00b", "unknown"),
        ("/api/events?a%00b=1", "query"),
    ],
)
async def test_nul_in_a_query_parameter_is_400_naming_it(admin, team_a_pipeline, path, field):
    frame, code = await refusal(path, headers(admin))
    assert frame["error_code"] == "validation_error"
    assert frame["errors"][0]["field"] == field
    assert "NUL" in frame["message"]
    assert code == 4400


async def test_nul_does_not_hide_a_missing_token(db):
    frame, code = await refusal("/api/namespaces/te%00am/pipelines/build/runs/1/tasks/compile/logs", headers())
    assert (frame["error_code"], code) == ("unauthenticated", 4401)
    frame, code = await refusal("/api/events?history=%00", headers())
    assert (frame["error_code"], code) == ("unauthenticated", 4401)


# --- unknown paths -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/nope", "/api/events/extra", "/", "/admin/"])
async def test_an_unknown_path_is_a_not_found_frame_and_4404(db, path):
    frame, code = await refusal(path, headers())
    assert (frame["error_code"], code) == ("not_found", 4404)
    assert frame["errors"][0]["field"] == "path"
    assert frame["request_id"]
