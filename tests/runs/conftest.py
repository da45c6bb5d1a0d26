"""Fixtures for orchestrator tests: the engine (memory, and real Docker), driven through the inline queue.

``engine`` runs each test twice: on the memory scheduler (runs/schedulers/memory.py: threads of the test process
interpreting a shell subset), which every machine has, and on the real Docker engine (marked ``docker``: it skips
without Docker, except under CI=true, where it fails). A test that needs what only a real container engine has (its
network, pipes and command substitution, the busybox applets, processes outside the test process) uses
``docker_engine`` instead and is marked ``docker``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator

import pytest

from runs.schedulers import get_scheduler, memory
from runs.schedulers.docker import DockerScheduler
from tests.conftest import need
from tests.support import engine as engine_support
from tests.support.images import docker_available


def _engine_settings(settings) -> None:
    """Short slices and leases so tests run in seconds."""
    settings.GOFER_DRIVE_SLICE_SECONDS = 2
    settings.GOFER_LEASE_SECONDS = 4
    # Keep finished containers (as an operator debugging would) so that tests can inspect them; the fixture removes
    # them at the end. With 0 the engine would remove each container as its task completes.
    settings.GOFER_CONTAINER_PRUNE_AFTER = 3600
    # A busybox shell as PID 1 ignores SIGTERM unless it traps it; keep the SIGKILL grace short in tests.
    settings.GOFER_TASK_STOP_TIMEOUT = 3


@contextlib.contextmanager
def _memory_engine(settings, monkeypatch) -> Iterator[engine_support.InlineQueue]:
    settings.GOFER_SCHEDULER = "memory"
    _engine_settings(settings)
    memory.reset()
    memory.MISSING_IMAGES.add(engine_support.MISSING_IMAGE)
    get_scheduler.cache_clear()
    inline = engine_support.install(monkeypatch)
    inline.kind = "memory"
    inline.image = "busybox:latest"
    try:
        yield inline
    finally:
        memory.reset()
        get_scheduler.cache_clear()


@contextlib.contextmanager
def _docker_engine(settings, monkeypatch, request) -> Iterator[engine_support.InlineQueue]:
    need(docker_available(), "the Docker engine is not running (see docs/development.md)")
    busybox = request.getfixturevalue("busybox_image")
    settings.GOFER_SCHEDULER = "docker"
    settings.GOFER_DOCKER_NETWORK_MODE = "none"
    _engine_settings(settings)
    get_scheduler.cache_clear()
    inline = engine_support.install(monkeypatch)
    inline.kind = "docker"
    inline.image = busybox
    try:
        yield inline
    finally:
        engine_support.remove_docker_containers_of_this_test()
        get_scheduler.cache_clear()


@pytest.fixture(params=["memory", pytest.param("docker", marks=pytest.mark.docker)])
def engine(transactional_db, settings, monkeypatch, request):
    """The orchestrator on the memory engine, then on real Docker (``engine.kind`` says which)."""
    if request.param == "memory":
        context = _memory_engine(settings, monkeypatch)
    else:
        context = _docker_engine(settings, monkeypatch, request)
    with context as inline:
        yield inline


@pytest.fixture
def docker_engine(transactional_db, settings, monkeypatch, request):
    """The orchestrator on real Docker only, for what the memory engine cannot do. Mark the test ``docker``."""
    with _docker_engine(settings, monkeypatch, request) as inline:
        yield inline


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
