"""Gofer adopts and prunes only its own containers (issue 8, finding 12).

The audit: a planted container with the right name was adopted and its output recorded as the task's; two
installations on one Docker engine collide (ids start at 1) and prune each other's containers. Every container now
carries this installation's id (made once, stored), adoption checks it, and pruning filters on it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid

import docker
import pytest

from access import services as access
from access.models import SystemPreferences
from kernel.rbac import SYSTEM_PRINCIPAL
from pipelines.models import Namespace
from runs import services as runs
from runs.engine import driving, pruning
from runs.models import Run, TaskExecution
from runs.schedulers import get_scheduler, memory
from runs.schedulers.base import LABEL_INSTALLATION, LABEL_TASK_EXECUTION, ContainerSpec, SchedulerError
from runs.schedulers.docker import DockerScheduler
from tests.conftest import deployed_pipeline
from tests.support import engine as engine_support


@pytest.fixture
def inline(transactional_db, settings, monkeypatch):
    settings.GOFER_SCHEDULER = "memory"
    settings.GOFER_CONTAINER_PRUNE_AFTER = 3600
    get_scheduler.cache_clear()
    memory.reset()
    queue = engine_support.install(monkeypatch)
    Namespace.objects.create(id="inst-a", name="inst-a")
    yield queue
    memory.reset()
    get_scheduler.cache_clear()


def one_task_pipeline(pipeline_id="planted", script="echo from-gofer"):
    task = {"id": "t", "image": "busybox:latest", "command": ["sh", "-c", script]}
    return deployed_pipeline("inst-a", pipeline_id, {"id": pipeline_id, "name": pipeline_id, "tasks": [task]})


def test_the_installation_id_is_made_once_and_kept(transactional_db):
    first = access.installation_id()
    assert uuid.UUID(first)
    assert access.installation_id() == first == str(SystemPreferences.load().installation_id)


def test_every_container_carries_this_installations_id_and_its_name(inline):
    pipeline = one_task_pipeline()
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    inline.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=30)
    te = TaskExecution.objects.get(run=run)
    seen = memory.inspect(te.container_id)
    installation = access.installation_id()
    assert seen.labels[LABEL_INSTALLATION] == installation
    assert seen.labels[LABEL_TASK_EXECUTION] == str(te.pk)
    assert driving.container_name(te, installation).startswith(f"gofer-{installation[:8]}-inst-a-planted-")


def test_a_planted_container_with_the_right_name_is_not_adopted(inline, settings):
    settings.GOFER_CONTINUE_IN_WORKER = False  # it waits for a state a continued run passes within one step
    pipeline = one_task_pipeline()
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    inline.drain(until=lambda: TaskExecution.objects.filter(run=run, state="processing").exists(), timeout=30)
    te = TaskExecution.objects.get(run=run)
    name = driving.container_name(te, access.installation_id())
    # Someone who can guess the name starts a container under it first, with no (or a forged) installation label.
    memory.MemoryScheduler().start(
        ContainerSpec(name=name, image="busybox:latest", command=["sh", "-c", "echo planted-output"])
    )
    inline.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=30)
    te.refresh_from_db()
    assert (te.status, te.status_reason) == ("failed", "scheduler_error")
    assert "this Gofer installation did not start" in te.status_description
    assert te.container_id == ""


def test_adoption_of_a_container_this_installation_started_still_works(inline):
    spec = ContainerSpec(
        name="gofer-x-adopt",
        image="busybox:latest",
        command=["true"],
        labels={LABEL_INSTALLATION: "inst", LABEL_TASK_EXECUTION: "7"},
    )
    first = memory.MemoryScheduler().start(spec)
    again = memory.MemoryScheduler().start(spec)
    assert again.adopted and again.handle == first.handle
    other = ContainerSpec(name="gofer-x-adopt", image="busybox:latest", labels={LABEL_INSTALLATION: "other"})
    with pytest.raises(SchedulerError, match="did not start"):
        memory.MemoryScheduler().start(other)


def test_pruning_leaves_another_installations_containers_alone(inline, settings):
    settings.GOFER_CONTAINER_PRUNE_AFTER = 1
    pipeline = one_task_pipeline("pruned")
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    inline.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=30)
    ours = TaskExecution.objects.get(run=run).container_id
    # Another installation's finished container for a task execution whose id is also done here.
    theirs = (
        memory.MemoryScheduler()
        .start(
            ContainerSpec(
                name="gofer-other-installation",
                image="busybox:latest",
                command=["true"],
                labels={
                    LABEL_INSTALLATION: str(uuid.uuid4()),
                    LABEL_TASK_EXECUTION: str(TaskExecution.objects.get(run=run).pk),
                },
            )
        )
        .handle
    )
    import time

    time.sleep(1.5)
    assert pruning.prune_containers() == 1
    assert memory.inspect(ours) is None
    assert memory.inspect(theirs) is not None


@pytest.mark.docker
def test_docker_refuses_to_adopt_a_container_another_installation_started(busybox_image, docker_client, settings):
    settings.GOFER_DOCKER_NETWORK_MODE = "none"
    engine = DockerScheduler()
    name = f"gofer-test-inst-{uuid.uuid4().hex[:8]}"
    try:
        engine.start(
            ContainerSpec(
                name=name,
                image=busybox_image,
                command=["true"],
                labels={LABEL_INSTALLATION: "them", LABEL_TASK_EXECUTION: "1"},
            )
        )
        with pytest.raises(SchedulerError, match="did not start"):
            engine.start(
                ContainerSpec(
                    name=name,
                    image=busybox_image,
                    command=["true"],
                    labels={LABEL_INSTALLATION: "us", LABEL_TASK_EXECUTION: "1"},
                )
            )
        old = dt.timedelta(seconds=0)
        assert engine.prune(old, lambda te: True, installation="us") == 0
        assert docker_client.containers.get(name)
        assert engine.prune(old, lambda te: True, installation="them") == 1
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.containers.get(name).remove(force=True)
        engine.close()
