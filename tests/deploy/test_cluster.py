"""The production shape on this machine: PostgreSQL and Redis, two servers and two worker clusters (real processes
on loopback ports, the Docker engine), pipelines started through both servers; one worker cluster is SIGKILLed while
tasks run, and every run still completes successfully, each task's container started once."""

from __future__ import annotations

import time

import docker
import pytest
import requests
from django.conf import settings as django_settings
from django.db import connection

from access import services as access
from runs.engine import reconciling
from runs.models import Run, TaskExecution
from runs.schedulers import get_scheduler
from runs.schedulers.base import LABEL_INSTALLATION, LABEL_TASK_EXECUTION
from tests.conftest import deployed_pipeline, need
from tests.support.engine import remove_docker_containers_of_this_test
from tests.support.images import docker_available
from tests.support.processes import Server, Worker

pytestmark = [pytest.mark.docker, pytest.mark.postgres, pytest.mark.slow]

RUNS = 6


@pytest.fixture
def cluster_engine(transactional_db, settings, request):
    need(connection.vendor == "postgresql", "GOFER_TEST_DB=postgres is not set (the cluster runs on PostgreSQL)")
    need(bool(django_settings.REDIS_URL), "GOFER_TEST_REDIS=1 is not set (the cluster's queue is Redis)")
    need(docker_available(), "the Docker engine is not running (see docs/development.md)")
    image = request.getfixturevalue("busybox_image")
    settings.GOFER_SCHEDULER = "docker"
    settings.GOFER_DOCKER_NETWORK_MODE = "none"
    settings.GOFER_DRIVE_SLICE_SECONDS = 2
    settings.GOFER_LEASE_SECONDS = 4
    settings.GOFER_CONTAINER_PRUNE_AFTER = 3600  # kept so the test can count them; removed below
    get_scheduler.cache_clear()
    processes = []
    yield image, processes
    for process in processes:
        process.stop()
    remove_docker_containers_of_this_test()


def wait_for(condition, timeout: float, what: str, processes=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    detail = "\n\n".join(p.log_tail(40) for p in processes)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{detail}")


def test_two_servers_two_workers_finish_every_run_with_one_worker_killed(cluster_engine, alice):
    image, processes = cluster_engine
    deployed_pipeline(
        "team-a",
        "work",
        {
            "id": "work",
            "name": "work",
            "parallelism": RUNS,
            "tasks": [
                {"id": "first", "image": image, "command": ["sh", "-c", "for i in $(seq 1 12); do sleep 0.25; done"]},
                {"id": "second", "image": image, "command": ["echo", "done"], "depends_on": {"first": "Success"}},
            ],
        },
    )
    servers = [Server(), Server()]
    workers = [Worker(workers=2), Worker(workers=2)]
    processes.extend(servers + workers)
    headers = {"Authorization": f"Bearer {alice.token}", "gofer-api-version": "v0"}
    numbers = []
    for n in range(RUNS):
        answer = requests.post(
            f"{servers[n % 2].url}/api/namespaces/team-a/pipelines/work/runs",
            json={"variables": {}},
            headers=headers,
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        numbers.append(answer.json()["run"]["run_id"])
    assert sorted(numbers) == list(range(1, RUNS + 1))

    def some_running():
        return TaskExecution.objects.filter(run__pipeline__slug="work", state="running").count() >= 2

    wait_for(some_running, 90, "tasks running on the workers", processes)
    workers[0].kill()

    def all_done():
        # What the scheduled reconciler does every minute, so the test does not wait for the schedule.
        reconciling.reconcile()
        return Run.objects.filter(pipeline__slug="work", state="complete").count() == RUNS

    wait_for(all_done, 180, "every run to complete with one worker cluster killed", processes)
    finished = Run.objects.filter(pipeline__slug="work").order_by("number")
    assert [(r.number, r.status) for r in finished] == [(n, "successful") for n in range(1, RUNS + 1)], [
        r.status_description for r in finished
    ]
    # Each task execution's container was started once: none re-started after the crash.
    client = docker.from_env()
    for te in TaskExecution.objects.filter(run__pipeline__slug="work"):
        labels = [f"{LABEL_TASK_EXECUTION}={te.pk}", f"{LABEL_INSTALLATION}={access.installation_id()}"]
        assert len(client.containers.list(all=True, filters={"label": labels})) == 1, te
    # Both servers still answer, and the surviving worker is alive.
    for server in servers:
        assert requests.get(f"{server.url}/readyz", timeout=30).status_code == 200
    assert workers[1].exit_code() is None
