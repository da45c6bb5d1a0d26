"""A finished task's container leaves the Docker host at once (issue 8, finding 6).

The audit: secrets stayed on the Docker host for 24 h in the container's ``Config.Env``, and its unmasked output in
``docker logs``, until pruning. Now the container is removed as soon as its logs are stored and its exit recorded,
unless an operator keeps containers for debugging (GOFER_CONTAINER_PRUNE_AFTER seconds).
"""

from __future__ import annotations

import contextlib
import time

import docker
import pytest

from kernel.rbac import SYSTEM_PRINCIPAL
from pipelines.models import Namespace
from runs import logs
from runs import services as runs
from runs.models import Run, TaskExecution
from runs.schedulers import get_scheduler, memory
from secretstore import services as secrets
from tests.conftest import deployed_pipeline, need
from tests.support import engine as engine_support
from tests.support.images import docker_available


def _pipeline(image: str, pipeline_id: str):
    if not Namespace.objects.filter(id="removal").exists():
        Namespace.objects.create(id="removal", name="removal")
    task = {
        "id": "talk",
        "image": image,
        "command": ["sh", "-c", "echo the secret is $TOKEN"],
        "variables": {"TOKEN": "pipeline_secret{{tok}}"},
    }
    pipeline = deployed_pipeline("removal", pipeline_id, {"id": pipeline_id, "name": pipeline_id, "tasks": [task]})
    secrets.put_pipeline_secret(pipeline, "tok", "hunter2-removed-with-its-container")
    return pipeline


@pytest.fixture
def on_docker(transactional_db, settings, monkeypatch, request):
    need(docker_available(), "the Docker engine is not running (see docs/development.md)")
    image = request.getfixturevalue("busybox_image")
    settings.GOFER_SCHEDULER = "docker"
    settings.GOFER_DOCKER_NETWORK_MODE = "none"
    settings.GOFER_DRIVE_SLICE_SECONDS = 2
    get_scheduler.cache_clear()
    inline = engine_support.install(monkeypatch)
    inline.image = image
    client = docker.from_env()
    yield inline, client
    for te in TaskExecution.objects.exclude(container_id=""):
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(te.container_id).remove(force=True)
    client.close()
    get_scheduler.cache_clear()


@pytest.mark.docker
def test_a_finished_tasks_container_and_its_secrets_are_gone_from_the_host(on_docker, settings):
    inline, client = on_docker
    settings.GOFER_CONTAINER_PRUNE_AFTER = 0  # the default
    run = runs.start_run(SYSTEM_PRINCIPAL, _pipeline(inline.image, "gone"), {})
    inline.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=60)
    te = TaskExecution.objects.get(run=run)
    assert te.status == "successful"
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(te.container_id)
    # What the task printed is kept, masked, in Gofer's own log.
    [line] = [r["m"] for r in logs.read_records(logs.path_for(te)) if not r.get("eof")]
    assert line == "the secret is ********"


@pytest.mark.docker
def test_an_operator_can_keep_finished_containers_for_debugging(on_docker, settings):
    inline, client = on_docker
    settings.GOFER_CONTAINER_PRUNE_AFTER = 3600
    run = runs.start_run(SYSTEM_PRINCIPAL, _pipeline(inline.image, "kept"), {})
    inline.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=60)
    container = client.containers.get(TaskExecution.objects.get(run=run).container_id)
    assert container.status == "exited"


def test_the_memory_engine_removes_a_finished_container_too(transactional_db, settings, monkeypatch):
    settings.GOFER_SCHEDULER = "memory"
    settings.GOFER_CONTAINER_PRUNE_AFTER = 0
    get_scheduler.cache_clear()
    memory.reset()
    inline = engine_support.install(monkeypatch)
    run = runs.start_run(SYSTEM_PRINCIPAL, _pipeline("busybox:latest", "gone-mem"), {})
    inline.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=30)
    assert memory.inspect(TaskExecution.objects.get(run=run).container_id) is None
    memory.reset()
    get_scheduler.cache_clear()


def _chain_on_memory(settings, monkeypatch):
    settings.GOFER_SCHEDULER = "memory"
    settings.GOFER_CONTAINER_PRUNE_AFTER = 0
    get_scheduler.cache_clear()
    memory.reset()
    inline = engine_support.install(monkeypatch)
    if not Namespace.objects.filter(id="removal").exists():
        Namespace.objects.create(id="removal", name="removal")
    tasks = [
        {"id": "first", "image": "busybox:latest", "command": ["sh", "-c", "echo one"]},
        {
            "id": "second",
            "image": "busybox:latest",
            "command": ["sh", "-c", "echo two"],
            "depends_on": {"first": "any"},
        },
    ]
    pipeline = deployed_pipeline("removal", "pair", {"id": "pair", "name": "pair", "tasks": tasks})
    return inline, pipeline


def _first_container_when_second_starts(monkeypatch, delay: float) -> list[bool]:
    """Whether the first task's container still exists as the second one's start begins, and after ``delay``."""
    from runs.engine import driving

    seen: list[bool] = []
    real_start = driving._start

    def start(te, lease):
        if te.task_slug == "second":
            first = TaskExecution.objects.get(run=te.run, task_slug="first")
            seen.append(memory.inspect(first.container_id) is not None)
            time.sleep(delay)  # a start that takes long (an image pull)
            seen.append(memory.inspect(first.container_id) is not None)
        return real_start(te, lease)

    monkeypatch.setattr(driving, "_start", start)
    return seen


def _run_pair(settings, monkeypatch, *, removal_delay: float, start_delay: float) -> tuple[Run, list[bool]]:
    """Run first -> second on the memory engine; returns the run and what ``_first_container_when_second_starts``
    saw."""
    from runs.engine import driving

    inline, pipeline = _chain_on_memory(settings, monkeypatch)
    monkeypatch.setattr(driving, "REMOVAL_DELAY_SECONDS", removal_delay)
    seen = _first_container_when_second_starts(monkeypatch, delay=start_delay)
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    inline.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=30)
    return run, seen


def test_the_last_container_is_removed_once_the_next_task_of_the_chain_has_started(
    transactional_db, settings, monkeypatch
):
    run, seen = _run_pair(settings, monkeypatch, removal_delay=60, start_delay=0)
    assert seen == [True, True]  # not beside the next start
    for te in TaskExecution.objects.filter(run=run):
        assert memory.inspect(te.container_id) is None  # but gone when the step ended
    memory.reset()
    get_scheduler.cache_clear()


def test_a_slow_next_start_does_not_keep_the_last_container_longer_than_the_removal_delay(
    transactional_db, settings, monkeypatch
):
    _, seen = _run_pair(settings, monkeypatch, removal_delay=0.2, start_delay=3)
    assert seen[-1] is False  # removed while the next start still ran
    memory.reset()
    get_scheduler.cache_clear()
