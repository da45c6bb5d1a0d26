"""Attach's rules (issue 8, finding 1), through the real ASGI application in the test process, on the memory engine
and on Docker: attach needs the ``attach`` permission (write on runs and task executions is not enough, a run token
never has it), can be turned off for the whole server and per namespace, is recorded as an event and on the run's
timeline, and its output is masked like the logs. (tests/runs/test_attach.py attaches through a real daphne.)"""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.test import APIClient

from access import services as access
from events.models import Event
from gofer_site.asgi import application
from kernel.rbac import SYSTEM_PRINCIPAL
from pipelines.models import Namespace
from runs import services as runs
from runs.models import Run, TaskExecution, TimelineEntry
from secretstore import services as secrets
from tests.conftest import FULL, TENANT_RESOURCES, ApiCaller, make_caller
from tests.support.engine import pipeline_with, sh

pytestmark = [pytest.mark.asyncio]

SECRET = "attach-s3cret-value"


@pytest.fixture
def running(engine, namespaces):
    """Run 1 of team-a/attach: task ``long`` running, with a pipeline secret in its environment and a run token."""
    pipeline = pipeline_with(
        [sh("long", engine.image, "sleep 60", inject_api_token=True, variables={"PW": "pipeline_secret{{pw}}"})],
        pipeline_id="attach",
    )
    secrets.put_pipeline_secret(pipeline, "pw", SECRET)
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})

    def ready() -> bool:
        te = TaskExecution.objects.filter(run=run, task_slug="long").first()
        return te is not None and te.state == "running" and bool(te.container_id)

    engine.drain(until=ready, timeout=90)
    yield Run.objects.get(pk=run.pk)
    runs.cancel_run(SYSTEM_PRINCIPAL, run)
    engine.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=60)


@pytest.fixture
def attacher(namespaces) -> ApiCaller:
    """Everything in team-a, attach included."""
    access.create_role(
        "team-a-attach",
        "everything in team-a, attach too",
        [{"resources": ["namespaces:^team-a$", "pipelines:.*", *TENANT_RESOURCES, "attach"], "actions": FULL}],
    )
    return make_caller("attacher", ["team-a-attach"])


def path(run: Run, command: str = "sh") -> str:
    return f"/api/namespaces/team-a/pipelines/attach/runs/{run.number}/tasks/long/attach?command={command}"


def headers(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"127.0.0.1:8080"), (b"authorization", f"Bearer {token}".encode())]


async def refusal(url: str, token: str) -> tuple[dict, int]:
    communicator = WebsocketCommunicator(application, url, headers=headers(token))
    try:
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        message = await communicator.receive_output(timeout=10)
        assert message["type"] == "websocket.send" and "text" in message, message
        closed = await communicator.receive_output(timeout=10)
        assert closed["type"] == "websocket.close", closed
        return json.loads(message["text"]), closed["code"]
    finally:
        await communicator.disconnect()


async def session_output(url: str, token: str, typed: bytes, until: bytes, timeout: float = 15) -> bytes:
    """Attach, type ``typed`` and return the output up to the first line holding ``until``."""
    communicator = WebsocketCommunicator(application, url, headers=headers(token))
    try:
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        await communicator.send_to(bytes_data=typed)
        output = b""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                message = await communicator.receive_output(timeout=1)
            except TimeoutError:
                continue
            if message["type"] == "websocket.close":
                break
            assert message.get("bytes") is not None, message
            output += message["bytes"]
            if any(until in line and b"echo" not in line for line in output.split(b"\n")):
                return output
        raise AssertionError(f"no line with {until!r}; got {output!r}")
    finally:
        await communicator.disconnect()


async def test_write_on_runs_and_task_executions_is_not_enough_to_attach(running, alice):
    frame, code = await refusal(path(running), alice.token)
    assert (frame["error_code"], code) == ("permission_denied", 4403)
    assert "task_executions, attach" in frame["message"]


async def test_a_run_token_never_attaches_even_to_its_own_run(running):
    frame, code = await refusal(path(running), running.token_secret)
    assert code in (4403, 4404), frame
    assert frame["error_code"] in ("permission_denied", "not_found")


async def test_the_user_role_cannot_attach(engine, user):
    pipeline = await sync_to_async(pipeline_with)(
        [sh("long", engine.image, "sleep 60")], pipeline_id="attach", namespace_id="default"
    )
    run = await sync_to_async(runs.start_run)(SYSTEM_PRINCIPAL, pipeline, {})
    url = f"/api/namespaces/default/pipelines/attach/runs/{run.number}/tasks/long/attach"
    frame, code = await refusal(url, user.token)
    assert (frame["error_code"], code) == ("permission_denied", 4403)
    await sync_to_async(runs.cancel_run)(SYSTEM_PRINCIPAL, run)


async def test_attach_output_is_masked_like_the_logs(running, attacher):
    output = await session_output(path(running), attacher.token, b'echo "pw=$PW" ; echo "tok=$GOFER_TOKEN"\n', b"tok=")
    assert SECRET.encode() not in output
    assert running.token_secret.encode() not in output
    assert b"pw=********" in output and b"tok=********" in output


async def test_attach_is_recorded_as_an_event_and_on_the_timeline(running, attacher):
    await session_output(path(running, "sh"), attacher.token, b"echo attached-ok\n", b"attached-ok")
    event = await sync_to_async(lambda: Event.objects.filter(kind="attached_task_execution").get())()
    assert event.details["task_execution_id"] == "long"
    assert event.details["command"] == "sh"
    assert event.details["user"] == "attacher"
    assert event.details["token_id"] == attacher.token_id
    entry = await sync_to_async(lambda: TimelineEntry.objects.filter(run=running, kind="attached").get())()
    assert entry.task_slug == "long"
    assert "attacher" in entry.message and "'sh'" in entry.message


async def test_an_admin_turns_attach_off_for_a_namespace(running, attacher, admin):
    client = ApiCaller(APIClient(), admin.token)
    response = await sync_to_async(client.patch)("/api/namespaces/team-a", {"allow_attach": False})
    assert response.status_code == 200, response.json()
    assert response.json()["namespace"]["allow_attach"] is False
    assert (await sync_to_async(Namespace.objects.get)(id="team-a")).allow_attach is False
    frame, code = await refusal(path(running), attacher.token)
    assert (frame["error_code"], code) == ("permission_denied", 4403)
    assert "allow_attach" in frame["message"]
    frame, code = await refusal(path(running), admin.token)  # admins too: the namespace is closed to attach
    assert code == 4403


async def test_attach_can_be_turned_off_for_the_whole_server(running, attacher, settings):
    settings.GOFER_ALLOW_ATTACH = False
    frame, code = await refusal(path(running), attacher.token)
    assert (frame["error_code"], code) == ("permission_denied", 4403)
    assert "GOFER_ALLOW_ATTACH" in frame["message"]
