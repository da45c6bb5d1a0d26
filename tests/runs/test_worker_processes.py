"""Real processes end to end: a django-q2 cluster executes runs; daphne streams their logs over real websockets.

The crash test SIGKILLs the whole worker cluster while a task is running and shows the run completing after a new
cluster starts, with the task executed exactly once and every log line kept, once each.
"""

from __future__ import annotations

import json
import time

import docker
import pytest
from websockets.sync.client import connect

from access import services as access
from kernel.rbac import SYSTEM_PRINCIPAL
from pipelines.models import Pipeline
from runs import logs
from runs import services as runs
from runs.engine import reconciling
from runs.models import Run, TaskExecution
from runs.schedulers import get_scheduler
from runs.schedulers.base import LABEL_INSTALLATION, LABEL_TASK_EXECUTION
from tests.conftest import deployed_pipeline, need
from tests.support.engine import remove_docker_containers_of_this_test
from tests.support.images import docker_available
from tests.support.processes import Server, Worker

pytestmark = [pytest.mark.docker, pytest.mark.slow]

COUNT_SCRIPT = "for i in $(seq 1 {n}); do echo line-$i; sleep {pause}; done"


@pytest.fixture
def real_engine(transactional_db, settings, request):
    need(docker_available(), "the Docker engine is not running (see docs/development.md)")
    image = request.getfixturevalue("busybox_image")
    settings.GOFER_SCHEDULER = "docker"
    settings.GOFER_DOCKER_NETWORK_MODE = "none"
    settings.GOFER_DRIVE_SLICE_SECONDS = 2
    settings.GOFER_LEASE_SECONDS = 4
    settings.GOFER_CONTAINER_PRUNE_AFTER = 3600  # keep finished containers: the crash test inspects its own
    get_scheduler.cache_clear()
    processes = []
    yield image, processes
    for process in processes:
        process.stop()
    # Not every team-a container on the engine: another test session's would go too.
    remove_docker_containers_of_this_test()


def wait_for(condition, timeout: float, what: str, processes=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    detail = "\n\n".join(p.output()[-3000:] for p in processes)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{detail}")


def counting_pipeline(image: str, n: int, pause: float):
    return deployed_pipeline(
        "team-a",
        "count",
        {
            "id": "count",
            "name": "count",
            "tasks": [
                {"id": "count", "image": image, "command": ["sh", "-c", COUNT_SCRIPT.format(n=n, pause=pause)]},
                {"id": "after", "image": image, "command": ["echo", "after"], "depends_on": {"count": "Success"}},
            ],
        },
    )


def test_killed_worker_cluster_loses_no_run_no_line_and_runs_the_task_once(real_engine, alice):
    image, processes = real_engine
    counting_pipeline(image, n=40, pause=0.25)
    first = Worker(workers=2)
    processes.append(first)
    response = alice.post("/api/namespaces/team-a/pipelines/count/runs", {"variables": {}})
    assert response.status_code == 201
    run = Run.objects.get(number=response.json()["run"]["run_id"], pipeline__slug="count")

    def count_te():
        return TaskExecution.objects.filter(run=run, task_slug="count").first()

    wait_for(
        lambda: count_te() is not None and len(list(logs.read_records(logs.path_for(count_te())))) >= 5,
        60,
        "the first log lines",
        processes,
    )
    first.kill()
    te = count_te()
    assert te.state == "running"
    container = docker.from_env().containers.get(te.container_id)
    assert container.status == "running"  # the task outlives the worker that started it

    second = Worker(workers=2)
    processes.append(second)

    def done():
        # What the scheduled reconciler does every minute; called here so the test does not wait for the schedule.
        reconciling.reconcile()
        return Run.objects.get(pk=run.pk).state == "complete"

    wait_for(done, 120, "the run to complete after the restart", processes)
    run.refresh_from_db()
    assert run.status == "successful", run.status_description
    te = count_te()
    lines = [r["m"] for r in logs.read_records(logs.path_for(te)) if not r.get("eof")]
    assert lines == [f"line-{i}" for i in range(1, 41)]
    records = list(logs.read_records(logs.path_for(te)))
    assert records[-1]["eof"] is True and records[-1]["exit_code"] == 0
    assert [r["n"] for r in records] == list(range(len(records)))
    client = docker.from_env()
    # This installation's containers only: other test sessions on the engine number their task executions too.
    labels = [f"{LABEL_TASK_EXECUTION}={te.pk}", f"{LABEL_INSTALLATION}={access.installation_id()}"]
    containers = client.containers.list(all=True, filters={"label": labels})
    assert len(containers) == 1  # one container, started once
    assert containers[0].attrs["RestartCount"] == 0
    assert te.started.isoformat()[:19] == containers[0].attrs["State"]["StartedAt"][:19]  # the engine's own times
    timeline = list(run.timeline.values_list("kind", flat=True))
    assert timeline.count("task_started") == 2  # "count" once (not re-started after the crash) and "after"


def test_logs_stream_live_over_a_real_websocket_without_gap_or_duplicate(real_engine, alice):
    image, processes = real_engine
    counting_pipeline(image, n=30, pause=0.1)
    processes.append(Worker(workers=2))
    server = Server()
    processes.append(server)
    run_id = alice.post("/api/namespaces/team-a/pipelines/count/runs", {"variables": {}}).json()["run"]["run_id"]
    url = f"{server.ws_url}/api/namespaces/team-a/pipelines/count/runs/{run_id}/tasks/count/logs"
    headers = {"Authorization": f"Bearer {alice.token}", "gofer-api-version": "v0"}

    def task_started():
        te = TaskExecution.objects.filter(run__number=run_id, task_slug="count", run__pipeline__slug="count").first()
        return te is not None and te.state in ("running", "complete")

    wait_for(task_started, 60, "the task to start", processes)
    received = []
    with connect(url, additional_headers=headers, open_timeout=10) as ws:
        while True:
            try:
                received.append(ws.recv(timeout=60))
            except Exception as exc:  # the server closes the stream after the end marker
                assert getattr(exc, "rcvd", None) is None or exc.rcvd.code == 1000, exc
                break
    assert received == [f"line-{i}" for i in range(1, 31)]

    # Resuming from an offset replays the stored lines from there, in the JSON format, ending with the marker.
    with connect(f"{url}?offset=25&format=json", additional_headers=headers, open_timeout=10) as ws:
        frames = []
        while True:
            try:
                frames.append(json.loads(ws.recv(timeout=30)))
            except Exception:
                break
    assert [f.get("text") for f in frames[:-1]] == [f"line-{i}" for i in range(26, 31)]
    assert [f["line"] for f in frames[:-1]] == list(range(25, 30))
    assert frames[-1] == {"eof": True, "exit_code": 0, "note": ""}


def test_outsider_cannot_open_another_tenants_log_stream(real_engine, alice, charlie):
    image, processes = real_engine
    counting_pipeline(image, n=1, pause=0)
    server = Server()
    processes.append(server)
    run = runs.start_run(SYSTEM_PRINCIPAL, Pipeline.objects.get(slug="count"), {})
    url = f"{server.ws_url}/api/namespaces/team-a/pipelines/count/runs/{run.number}/tasks/count/logs"
    with connect(url, additional_headers={"Authorization": f"Bearer {charlie.token}"}, open_timeout=10) as ws:
        error = json.loads(ws.recv(timeout=10))
        assert error["error_code"] == "not_found"
        with pytest.raises(Exception) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == 4404
    with connect(url, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["error_code"] == "unauthenticated"


def test_a_slow_client_replaying_a_long_log_gets_every_line_before_the_close(real_engine, alice):
    """daphne gave a client 1 s to answer the close and then dropped what was still queued; a slow reader of a long
    replay lost its tail (bench/log_throughput.py). Now sends wait for the client and the close waits for it too."""
    image, processes = real_engine
    deployed_pipeline(
        "team-a",
        "long-log",
        {
            "id": "long-log",
            "name": "long",
            "tasks": [{"id": "print", "image": image, "command": ["seq", "1", "60000"]}],
        },
    )
    processes.append(Worker(workers=2))
    server = Server()
    processes.append(server)
    run_id = alice.post("/api/namespaces/team-a/pipelines/long-log/runs", {"variables": {}}).json()["run"]["run_id"]
    wait_for(lambda: Run.objects.get(pipeline__slug="long-log", number=run_id).state == "complete", 60, "the run")
    url = f"{server.ws_url}/api/namespaces/team-a/pipelines/long-log/runs/{run_id}/tasks/print/logs"
    received = []
    with connect(url, additional_headers={"Authorization": f"Bearer {alice.token}"}, max_queue=16) as ws:
        while True:
            try:
                received.append(ws.recv(timeout=60))
            except Exception as exc:
                assert exc.rcvd.code == 1000, exc
                break
            if len(received) % 5000 == 0:
                time.sleep(0.5)  # a slow reader: the server's queue fills up behind it
    assert received == [str(i) for i in range(1, 60001)]
