"""Driving the orchestrator in tests, and reading what it did.

``InlineQueue`` stands in for the django-q2 broker inside one test process: messages the engine enqueues are kept in
order and ``drain()`` runs them, one at a time, through the same worker entry points (runs/tasks.py) a real worker
uses, until the queue is empty or a condition holds. Nothing of the engine is replaced; only the hop through the
broker is. Tests of the real broker and real worker processes (crash recovery) live in test_worker_processes.py.

The ``engine`` fixture (tests/runs/conftest.py) is an ``InlineQueue`` with two more attributes: ``kind``, the
container engine the test runs on (``"memory"`` or ``"docker"``), and ``image``, the image its tasks use. The
helpers below build pipelines for it and read back the results; those that look at containers (``container_state``,
``container_times``, ``container_exists``) ask the engine itself (the Docker API, or the memory engine's registry),
not Gofer's scheduler code, so that they check Gofer rather than repeat it.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import docker
from django.db import close_old_connections
from django.utils.module_loading import import_string

from kernel.rbac import SYSTEM_PRINCIPAL
from pipelines.models import Namespace
from runs import logs, queue
from runs import services as runs
from runs.models import Run, TaskExecution
from runs.schedulers import memory
from tests.conftest import deployed_pipeline

# An image no engine has and none can pull: the memory engine is told so (MISSING_IMAGES) by the fixture.
MISSING_IMAGE = "gofer-test/does-not-exist:never"


class InlineQueue:
    kind: str = ""  # "memory" or "docker", set by the engine fixture
    image: str = ""  # the image of the tasks, set by the engine fixture

    def __init__(self) -> None:
        self.messages: collections.deque[tuple[str, tuple[Any, ...]]] = collections.deque()
        self.executed: list[tuple[str, tuple[Any, ...]]] = []

    def enqueue(self, func: str, *args: Any) -> None:
        self.messages.append((func, args))

    def run_one(self) -> bool:
        if not self.messages:
            return False
        func, args = self.messages.popleft()
        self.executed.append((func, args))
        import_string(func)(*args)
        return True

    def drain(
        self, until: Callable[[], bool] | None = None, timeout: float = 60.0, reconcile_every: float = 2.0
    ) -> None:
        """Run queued work until ``until()`` is true (or, without it, until the queue is empty).

        Every ``reconcile_every`` seconds it also runs the reconciler, as the django-q2 schedule does (every minute
        in production; more often here so tests of timeouts and recovery take seconds).
        """
        deadline = time.monotonic() + timeout
        next_reconcile = time.monotonic() + reconcile_every
        while time.monotonic() < deadline:
            if until is not None and until():
                return
            if time.monotonic() >= next_reconcile:
                import_string("runs.tasks.reconcile")()
                next_reconcile = time.monotonic() + reconcile_every
            if not self.run_one():
                if until is None:
                    return
                time.sleep(0.05)
            close_old_connections()
        raise AssertionError(f"the engine did not get there within {timeout} s; queue: {list(self.messages)[:5]}")


def install(monkeypatch: Any) -> InlineQueue:
    inline = InlineQueue()
    monkeypatch.setattr(queue, "_enqueue", inline.enqueue)
    return inline


# --- pipelines and runs -------------------------------------------------------------------------------------------


def sh(task_id: str, image: str, script: str, **extra: Any) -> dict[str, Any]:
    """A task running ``script`` with ``sh -c``."""
    return {"id": task_id, "image": image, "command": ["sh", "-c", script], **extra}


def pipeline_with(tasks: list[dict[str, Any]], pipeline_id: str = "dag", namespace_id: str = "team-a", **config: Any):
    """Register and deploy a pipeline of ``tasks`` (creating its namespace if needed); returns the pipeline."""
    if not Namespace.objects.filter(id=namespace_id).exists():
        Namespace.objects.create(id=namespace_id, name=namespace_id)
    return deployed_pipeline(
        namespace_id, pipeline_id, {"id": pipeline_id, "name": pipeline_id, "tasks": tasks, **config}
    )


def run_to_completion(engine: InlineQueue, pipeline: Any, variables: dict[str, str] | None = None, timeout=90):
    """Start a run of ``pipeline`` and drive it until it is complete; the run, fresh from the database."""
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, variables or {})
    engine.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=timeout)
    return Run.objects.get(pk=run.pk)


def tasks_of(run: Any) -> dict[str, Any]:
    """The run's task executions by task id."""
    return {te.task_slug: te for te in TaskExecution.objects.filter(run=run)}


def log_text(te: Any) -> list[str]:
    """The stored log lines of a task execution (without the end marker)."""
    return [r["m"] for r in logs.read_records(logs.path_for(te)) if not r.get("eof")]


def running_log_text(run: Any, task_slug: str) -> list[str]:
    """The stored log lines of a task of ``run`` while it runs; empty before it runs (or if it is not running)."""
    te = TaskExecution.objects.filter(run=run, task_slug=task_slug).first()
    if te is None or te.state != "running":
        return []
    return [r.get("m") for r in logs.read_records(logs.path_for(te))]


# --- the containers, as the engine sees them ----------------------------------------------------------------------


def container_state(engine: InlineQueue, handle: str) -> str:
    """``"running"``, ``"exited"`` or ``"missing"``, as the container engine itself reports the container."""
    if engine.kind == "memory":
        found = memory.inspect(handle)
        return "missing" if found is None else found.state.value
    client = docker.from_env()
    try:
        return client.containers.get(handle).status
    except docker.errors.NotFound:
        return "missing"
    finally:
        client.close()


def container_exists(engine: InlineQueue, handle: str) -> bool:
    return container_state(engine, handle) != "missing"


def container_times(engine: InlineQueue, handle: str) -> tuple[dt.datetime, dt.datetime]:
    """When the container's program started and ended, by the engine's own clock (to the second for Docker, whose
    API reports nanoseconds as text)."""
    if engine.kind == "memory":
        found = memory.inspect(handle)
        assert found is not None and found.started_at and found.finished_at, found
        return found.started_at, found.finished_at
    client = docker.from_env()
    try:
        state = client.api.inspect_container(handle)["State"]
    finally:
        client.close()
    return tuple(dt.datetime.fromisoformat(state[key][:19] + "+00:00") for key in ("StartedAt", "FinishedAt"))


def remove_docker_containers_of_this_test() -> None:
    """Remove the Docker containers of this test's task executions, and only those: other test sessions may share
    the engine, and their containers carry the same namespaces and labels."""
    client = docker.from_env()
    try:
        for container_id in TaskExecution.objects.exclude(container_id="").values_list("container_id", flat=True):
            with contextlib.suppress(docker.errors.NotFound):
                client.containers.get(container_id).remove(force=True)
    finally:
        client.close()
