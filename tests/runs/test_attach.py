"""Attach: an interactive command inside a running task's container, over a real websocket to a real daphne process.

The orchestrator runs in the test process (the ``docker_engine`` fixture, real Docker); the server is a separate daphne
process that shares the test database and reaches the same Docker engine, as in a real installation. (A container of
the memory engine lives in the test process, where the server cannot reach it.)
"""

from __future__ import annotations

import json
import time

import docker
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from access import services as access
from kernel.rbac import SYSTEM_PRINCIPAL
from runs import services as runs
from runs.models import Run, TaskExecution
from tests.conftest import FULL, TENANT_RESOURCES, make_caller
from tests.support.engine import pipeline_with, sh
from tests.support.processes import Server

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def running(docker_engine, namespaces):
    engine = docker_engine
    """Run 1 of team-a/attach: task ``long`` running (a minute of sleep), task ``quick`` already complete."""
    pipeline = pipeline_with(
        [sh("long", engine.image, "sleep 60"), sh("quick", engine.image, "echo done")], pipeline_id="attach"
    )
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})

    def ready() -> bool:
        tes = {te.task_slug: te for te in TaskExecution.objects.filter(run=run)}
        return (
            "long" in tes
            and tes["long"].state == "running"
            and bool(tes["long"].container_id)
            and tes.get("quick") is not None
            and tes["quick"].state == "complete"
        )

    engine.drain(until=ready, timeout=90)
    yield run
    # Stop the sleeping task rather than leave it to the fixture's forced removal.
    runs.cancel_run(SYSTEM_PRINCIPAL, run)
    engine.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=60)


@pytest.fixture
def server(running):
    process = Server()
    yield process
    process.stop()


@pytest.fixture
def attacher(namespaces):
    """Everything in team-a and ``attach``, which write on runs and task executions alone does not give (issue 8;
    tests/runs/test_attach_rules.py)."""
    access.create_role(
        "team-a-attach",
        "everything in team-a, attach too",
        [{"resources": ["namespaces:^team-a$", "pipelines:.*", *TENANT_RESOURCES, "attach"], "actions": FULL}],
    )
    return make_caller("attacher", ["team-a-attach"])


def attach_url(server: Server, run: Run, task: str = "long", command: str = "/bin/sh") -> str:
    return f"{server.ws_url}/api/namespaces/team-a/pipelines/attach/runs/{run.number}/tasks/{task}/attach?command={command}"


def bearer(caller) -> dict[str, str]:
    return {"Authorization": f"Bearer {caller.token}", "gofer-api-version": "v0"}


def read_until(ws, wanted: bytes, timeout: float = 15) -> bytes:
    """The terminal output up to the first line equal to ``wanted`` (the TTY also echoes the typed command)."""
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = ws.recv(timeout=0.5)
        except TimeoutError:
            continue
        assert isinstance(message, bytes), message  # terminal output travels as binary frames
        output += message
        if wanted in [line.strip() for line in output.split(b"\n")]:
            return output
    raise AssertionError(f"no line {wanted!r} within {timeout} s; got {output!r}")


def refusal(url: str, headers: dict[str, str]) -> tuple[dict, int]:
    with connect(url, additional_headers=headers, open_timeout=10) as ws:
        frame = json.loads(ws.recv(timeout=10))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    return frame, closed.value.rcvd.code


def shells_in(container_id: str) -> list[str]:
    client = docker.from_env()
    try:
        processes = client.containers.get(container_id).top(ps_args="-o pid,args")["Processes"] or []
    finally:
        client.close()
    return [" ".join(p) for p in processes if "/bin/sh" in " ".join(p)]


def test_a_member_with_attach_runs_a_shell_inside_the_tasks_container(server, running, attacher):
    te = TaskExecution.objects.get(run=running, task_slug="long")
    with connect(attach_url(server, running), additional_headers=bearer(attacher), open_timeout=10) as ws:
        ws.send("echo hi-from-attach\n")
        assert b"hi-from-attach" in read_until(ws, b"hi-from-attach")
        # The command runs in the task's own container: its hostname is the container id, and arithmetic happened.
        ws.send("echo host-$(hostname)-$((40 + 2))\n")
        read_until(ws, f"host-{te.container_id[:12]}-42".encode())
        assert len(shells_in(te.container_id)) == 1
        ws.send("exit\n")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
        assert closed.value.rcvd.code == 1000  # the command ended: a normal close
    deadline = time.monotonic() + 10
    while shells_in(te.container_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert shells_in(te.container_id) == []
    te.refresh_from_db()
    assert te.state == "running"  # leaving the shell leaves the task alone


def test_closing_the_socket_ends_the_attached_command(server, running, attacher):
    te = TaskExecution.objects.get(run=running, task_slug="long")
    with connect(attach_url(server, running), additional_headers=bearer(attacher), open_timeout=10) as ws:
        ws.send("echo still-here\n")
        read_until(ws, b"still-here")
        assert len(shells_in(te.container_id)) == 1
    deadline = time.monotonic() + 10
    while shells_in(te.container_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert shells_in(te.container_id) == []


def test_read_only_members_outsiders_and_anonymous_callers_are_refused(server, running, bob, charlie):
    frame, code = refusal(attach_url(server, running), bearer(bob))
    assert (frame["error_code"], code) == ("permission_denied", 4403)
    assert "write" in frame["message"]
    frame, code = refusal(attach_url(server, running), bearer(charlie))
    assert (frame["error_code"], code) == ("not_found", 4404)
    frame, code = refusal(attach_url(server, running), {})
    assert (frame["error_code"], code) == ("unauthenticated", 4401)


def test_a_task_that_is_not_running_is_409(server, running, attacher):
    frame, code = refusal(attach_url(server, running, task="quick"), bearer(attacher))
    assert (frame["error_code"], code) == ("conflict", 4409)
    assert "not running (complete)" in frame["message"]
    frame, code = refusal(attach_url(server, running, task="missing"), bearer(attacher))
    assert (frame["error_code"], code) == ("not_found", 4404)


def test_a_bad_command_is_400_naming_it(server, running, attacher):
    frame, code = refusal(attach_url(server, running, command="%27unclosed"), bearer(attacher))
    assert (frame["error_code"], code) == ("validation_error", 4400)
    assert frame["errors"][0]["field"] == "command"


def test_attach_can_be_turned_off_on_the_server(running, attacher):
    server = Server(GOFER_ALLOW_ATTACH="false")
    try:
        frame, code = refusal(attach_url(server, running), bearer(attacher))
    finally:
        server.stop()
    assert (frame["error_code"], code) == ("permission_denied", 4403)
    assert "GOFER_ALLOW_ATTACH" in frame["message"]
