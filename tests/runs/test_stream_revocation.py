"""A revoked token loses its open log and attach streams too (4401), on a real daphne server: the re-check lives in
the base consumer (kernel/api/websockets.py), which every stream has.

The token is disabled in the test process, which the server's in-memory Channels layer cannot hear, so the server
finds out at its periodic re-check (here every second; tests/kernel/test_stream_access.py shows the push).
"""

from __future__ import annotations

import json
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from access import services as access
from access.models import Token
from kernel.rbac import SYSTEM_PRINCIPAL
from runs import services as runs
from runs.models import Run, TaskExecution
from tests.conftest import make_caller
from tests.support.engine import pipeline_with, sh
from tests.support.processes import Server

pytestmark = [pytest.mark.slow]


def start_sleeper(engine, pipeline_id: str) -> Run:
    pipeline = pipeline_with([sh("long", engine.image, "sleep 60")], pipeline_id=pipeline_id)
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})

    def running() -> bool:
        te = TaskExecution.objects.filter(run=run, task_slug="long").first()
        return te is not None and te.state == "running" and bool(te.container_id)

    engine.drain(until=running, timeout=90)
    return run


def stop(engine, run: Run) -> None:
    runs.cancel_run(SYSTEM_PRINCIPAL, run)
    engine.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=60)


def close_of(ws, timeout: float = 10) -> tuple[list, int]:
    frames = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            frames.append(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        except ConnectionClosed as closed:
            return frames, closed.rcvd.code if closed.rcvd else closed.code
        except TimeoutError:
            break
    raise AssertionError(f"not closed within {timeout} s: {frames}")


def test_a_disabled_token_loses_its_open_log_stream_with_4401(engine, namespaces):
    caller = make_caller("log-reader", ["admin"])
    run = start_sleeper(engine, "revoke-logs")
    server = Server(GOFER_STREAM_RECHECK_SECONDS="1")
    try:
        url = f"{server.ws_url}/api/namespaces/team-a/pipelines/revoke-logs/runs/{run.number}/tasks/long/logs"
        with connect(url, additional_headers={"Authorization": f"Bearer {caller.token}"}, open_timeout=10) as ws:
            with pytest.raises(TimeoutError):
                ws.recv(timeout=1)  # following a task that prints nothing
            access.set_token_disabled(Token.objects.get(pk=caller.token_id), True)
            frames, code = close_of(ws)
    finally:
        server.stop()
        stop(engine, run)
    assert code == 4401
    assert json.loads(frames[-1])["error_code"] == "unauthenticated"


@pytest.mark.docker
def test_a_disabled_token_loses_its_attach_session_with_4401(docker_engine, namespaces):
    caller = make_caller("attacher", ["admin"])
    run = start_sleeper(docker_engine, "revoke-attach")
    server = Server(GOFER_STREAM_RECHECK_SECONDS="1")
    try:
        url = (
            f"{server.ws_url}/api/namespaces/team-a/pipelines/revoke-attach/runs/{run.number}/tasks/long/attach"
            "?command=/bin/sh"
        )
        with connect(url, additional_headers={"Authorization": f"Bearer {caller.token}"}, open_timeout=10) as ws:
            ws.send(b"echo attached-ok\n")
            output = b""
            deadline = time.monotonic() + 15
            while b"attached-ok\r\n" not in output.replace(b"echo attached-ok", b"") and time.monotonic() < deadline:
                try:
                    output += ws.recv(timeout=0.5)
                except TimeoutError:
                    continue
            access.set_token_disabled(Token.objects.get(pk=caller.token_id), True)
            frames, code = close_of(ws)
    finally:
        server.stop()
        stop(docker_engine, run)
    assert code == 4401
    assert json.loads([f for f in frames if isinstance(f, str)][-1])["error_code"] == "unauthenticated"
