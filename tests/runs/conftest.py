"""Fixtures for orchestrator tests: the real Docker engine, driven through the inline queue."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator

import pytest

from runs.schedulers import get_scheduler
from runs.schedulers.docker import DockerScheduler
from tests.conftest import need
from tests.support import engine as engine_support
from tests.support.images import docker_available


@pytest.fixture
def engine(transactional_db, settings, monkeypatch, request):
    """Orchestrator on the real Docker engine, with short slices and leases so tests run in seconds."""
    need(docker_available(), "the Docker engine is not running (see docs/development.md)")
    busybox = request.getfixturevalue("busybox_image")
    settings.GOFER_SCHEDULER = "docker"
    settings.GOFER_DOCKER_NETWORK_MODE = "none"
    settings.GOFER_DRIVE_SLICE_SECONDS = 2
    settings.GOFER_LEASE_SECONDS = 4
    settings.GOFER_CONTAINER_PRUNE_AFTER = 0
    # A busybox shell as PID 1 ignores SIGTERM unless it traps it; keep the SIGKILL grace short in tests.
    settings.GOFER_TASK_STOP_TIMEOUT = 3
    get_scheduler.cache_clear()
    inline = engine_support.install(monkeypatch)
    inline.image = busybox
    yield inline
    _remove_containers_of_this_test()
    get_scheduler.cache_clear()


def _remove_containers_of_this_test() -> None:
    """Only this test's containers (other test sessions may share the engine)."""
    import docker

    from runs.models import TaskExecution

    client = docker.from_env()
    try:
        for container_id in TaskExecution.objects.exclude(container_id="").values_list("container_id", flat=True):
            with contextlib.suppress(docker.errors.NotFound):
                client.containers.get(container_id).remove(force=True)
    finally:
        client.close()


@pytest.fixture
def scheduler(settings, busybox_image) -> Iterator[DockerScheduler]:
    """A Docker scheduler on the real engine, containers without network."""
    settings.GOFER_DOCKER_NETWORK_MODE = "none"
    settings.GOFER_DOCKER_TIMEOUT = 30
    engine = DockerScheduler()
    yield engine
    engine.close()


@pytest.fixture
def names(docker_client) -> Iterator[Callable[[str], str]]:
    """Unique container names for this test; every container with such a name is removed afterwards."""
    prefix = f"gofer-test-{uuid.uuid4().hex[:10]}"
    counter = iter(range(1000))

    def make(label: str = "c") -> str:
        return f"{prefix}-{label}-{next(counter)}"

    yield make
    for container in docker_client.containers.list(all=True, filters={"name": prefix}):
        container.remove(force=True, v=True)
