"""Private images from a real registry: credentials, ``always_pull`` and the registry digest that is recorded.

The registry is Docker's own (``docker-registry``) on a loopback port with htpasswd authentication, without TLS
(tests/support/registry.py). Each test pushes its images to a repository of its own, so no test sees another's
images; a pushed image is not on the engine until a task pulls it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable

import docker.errors
import pytest

from events.models import Event
from runs import logs
from runs.models import TaskExecution, TimelineEntry
from runs.schedulers.base import ContainerSpec, NoSuchImage, RegistryAuth, SchedulerError, Started, State
from runs.schedulers.docker import DockerScheduler
from tests.support.engine import log_text, pipeline_with, run_to_completion, sh, tasks_of
from tests.support.registry import PushedImage, Registry, registry_fixture  # noqa: F401 - the "registry" fixture

pytestmark = [pytest.mark.docker]

# What a user is told when the registry refuses the credentials (the engine's own words stay in the server log).
AUTH_FAILURES = ("the registry refused access",)


@pytest.fixture(autouse=True)
def _registry_is_allowed(settings, registry):
    """The test registry is on loopback, which the outbound policy refuses unless the operator lists it."""
    settings.GOFER_ALLOWED_REGISTRIES = [registry.host]


@pytest.fixture
def push(registry, docker_client, busybox_image) -> Callable[..., PushedImage]:
    """Push an image whose ``/marker`` says ``marker`` to a repository of this test's own."""
    name = f"gofer-test/private-{uuid.uuid4().hex[:10]}"

    def make(marker: str, tag: str = "latest") -> PushedImage:
        return registry.push(docker_client, busybox_image, name, tag, marker)

    return make


def credentials(registry: Registry) -> RegistryAuth:
    return RegistryAuth(user=registry.user, password=registry.password)


def run_marker(scheduler: DockerScheduler, name: str, image: str, **fields) -> tuple[Started, str]:
    """Start ``image`` printing its marker file; what started, and what it printed."""
    started = scheduler.start(ContainerSpec(name=name, image=image, command=["cat", "/marker"], **fields))
    give_up = time.monotonic() + 15
    while (status := scheduler.status(started.handle)).state != State.EXITED:
        assert time.monotonic() < give_up, f"still {status} after 15 s"
        time.sleep(0.05)
    assert status.exit_code == 0, status
    return started, " ".join(line.text for line in scheduler.logs(started.handle, None))


def is_local(docker_client, reference: str) -> bool:
    try:
        docker_client.images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    return True


# --- the scheduler ------------------------------------------------------------------------------------------------


def test_a_private_image_pulls_with_the_right_credentials_runs_and_reports_its_registry_digest(
    scheduler, names, push, registry, docker_client
):
    image = push("private-content")
    assert not is_local(docker_client, image.reference)

    started, printed = run_marker(scheduler, names(), image.reference, registry_auth=credentials(registry))

    assert printed == "private-content"
    assert started.image_digest == image.digest
    assert started.image_digest.startswith(f"{registry.host}/gofer-test/private-")
    assert "@sha256:" in started.image_digest
    assert image.digest in docker_client.images.get(image.reference).attrs["RepoDigests"]


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param(lambda registry: RegistryAuth(registry.user, "not-" + registry.password), id="wrong password"),
        pytest.param(lambda registry: RegistryAuth("nobody", registry.password), id="unknown user"),
        pytest.param(lambda registry: None, id="no credentials"),
    ],
)
def test_start_without_valid_credentials_fails_permanently_saying_the_pull_was_refused_without_the_password(
    scheduler, names, push, registry, docker_client, auth
):
    image = push("never-seen")
    name = names()
    began = time.monotonic()

    with pytest.raises(SchedulerError) as caught:
        scheduler.start(ContainerSpec(name=name, image=image.reference, registry_auth=auth(registry)))

    assert time.monotonic() - began < 10
    assert isinstance(caught.value, NoSuchImage)
    assert caught.value.permanent is True
    message = str(caught.value)
    assert image.reference in message
    assert "could not be pulled" in message
    assert any(why in message for why in AUTH_FAILURES), message
    assert registry.password not in message
    assert registry.password not in repr(caught.value)
    assert docker_client.containers.list(all=True, filters={"name": name}) == []
    assert not is_local(docker_client, image.reference)


def test_always_pull_picks_up_a_new_version_pushed_under_the_same_tag_and_without_it_the_local_copy_runs(
    scheduler, names, push, registry
):
    auth = credentials(registry)
    first = push("version-one")
    started, printed = run_marker(scheduler, names("first"), first.reference, registry_auth=auth)
    assert (printed, started.image_digest) == ("version-one", first.digest)

    second = push("version-two")  # same repository and tag; the engine still has version one
    assert second.reference == first.reference
    assert second.digest != first.digest

    started, printed = run_marker(scheduler, names("cached"), first.reference, registry_auth=auth)
    assert (printed, started.image_digest) == ("version-one", first.digest)

    started, printed = run_marker(scheduler, names("pulled"), first.reference, registry_auth=auth, always_pull=True)
    assert (printed, started.image_digest) == ("version-two", second.digest)

    started, printed = run_marker(scheduler, names("after"), first.reference, registry_auth=auth)
    assert (printed, started.image_digest) == ("version-two", second.digest)


def test_always_pull_with_wrong_credentials_fails_even_when_the_image_is_on_the_engine(
    scheduler, names, push, registry
):
    image = push("cached-private")
    run_marker(scheduler, names("pull"), image.reference, registry_auth=credentials(registry))

    with pytest.raises(NoSuchImage) as caught:
        scheduler.start(
            ContainerSpec(
                name=names("refused"),
                image=image.reference,
                registry_auth=RegistryAuth(registry.user, "wrong-password"),
                always_pull=True,
            )
        )
    assert "always_pull" in str(caught.value)
    assert any(why in str(caught.value) for why in AUTH_FAILURES), str(caught.value)


def test_a_private_image_already_on_the_engine_runs_without_credentials_unless_always_pull_is_set(
    scheduler, names, push, registry
):
    # Docker keeps pulled images per engine, for every caller; docs/schedulers.md ("Private registries") tells
    # operators what this means for engines shared between tenants.
    image = push("shared-engine")
    run_marker(scheduler, names("owner"), image.reference, registry_auth=credentials(registry))

    _, printed = run_marker(scheduler, names("other"), image.reference)
    assert printed == "shared-engine"
    with pytest.raises(NoSuchImage, match="always_pull"):
        scheduler.start(ContainerSpec(name=names("checked"), image=image.reference, always_pull=True))


# --- the orchestrator ---------------------------------------------------------------------------------------------


def private_task(image: PushedImage, user: str, password: str, **extra) -> dict:
    return sh(
        "private",
        image.reference,
        "cat /marker",
        registry_auth={"user": user, "pass": password},
        always_pull_newest_image=True,
        **extra,
    )


def everything_stored_and_served(run, te: TaskExecution, caller) -> dict[str, str]:
    """Where a task execution's password could leak, as text: stored rows, API answers, events, timeline, task
    logs."""
    base = f"/api/namespaces/team-a/pipelines/{run.pipeline.slug}/runs/{run.number}"
    log_file = logs.path_for(te)

    def served(path: str) -> str:
        response = caller.get(path)
        assert response.status_code == 200, (path, response.status_code)
        return response.content.decode()

    return {
        "stored task": json.dumps(te.task),
        "stored task execution": json.dumps(
            [te.status_description, te.image_digest, te.variables, te.container_id], default=str
        ),
        "api task execution": served(f"{base}/tasks/{te.task_slug}"),
        "api task executions": served(f"{base}/tasks"),
        "api run": served(base),
        "api timeline": served(f"{base}/timeline"),
        "events": json.dumps([[event.kind, event.details] for event in Event.objects.all()], default=str),
        "timeline": json.dumps(list(TimelineEntry.objects.filter(run=run).values_list("kind", "message"))),
        "logs": log_file.read_text(errors="replace") if log_file.exists() else "",
    }


def test_a_task_with_registry_auth_and_always_pull_runs_from_the_private_registry_and_records_the_digest(
    docker_engine, push, registry, alice, caplog
):
    caplog.set_level(logging.DEBUG)  # the process's own log records too
    first = push("engine-one")
    pipeline = pipeline_with([private_task(first, registry.user, registry.password)], pipeline_id="private")

    run = run_to_completion(docker_engine, pipeline)
    te = tasks_of(run)["private"]
    assert (te.status, te.status_description) == ("successful", "")
    assert log_text(te) == ["engine-one"]
    assert te.image_digest == first.digest
    assert te.task["registry_auth"] == {"user": registry.user}
    assert te.task["always_pull_newest_image"] is True
    served = alice.get(f"/api/namespaces/team-a/pipelines/private/runs/{run.number}/tasks/private").json()
    assert served["task_execution"]["image_digest"] == first.digest

    # A new version under the same tag: always_pull_newest_image makes the next run pull it.
    second = push("engine-two")
    run_again = run_to_completion(docker_engine, pipeline)
    te_again = tasks_of(run_again)["private"]
    assert te_again.status == "successful"
    assert log_text(te_again) == ["engine-two"]
    assert te_again.image_digest == second.digest

    for where, text in [
        *everything_stored_and_served(run, te, alice).items(),
        *everything_stored_and_served(run_again, te_again, alice).items(),
        ("process log", caplog.text),
    ]:
        assert registry.password not in text, where


def test_wrong_registry_credentials_fail_the_task_with_scheduler_error_and_a_readable_reason_without_the_password(
    docker_engine, push, registry, alice, caplog
):
    caplog.set_level(logging.DEBUG)  # the process's own log records too
    image = push("engine-refused")
    wrong = "wrong-" + uuid.uuid4().hex
    pipeline = pipeline_with([private_task(image, registry.user, wrong)], pipeline_id="refused")

    run = run_to_completion(docker_engine, pipeline)
    te = tasks_of(run)["private"]
    assert (te.status, te.status_reason) == ("failed", "scheduler_error")
    assert te.status_description.startswith("could not start the container:")
    assert image.reference in te.status_description
    assert any(why in te.status_description for why in AUTH_FAILURES), te.status_description
    assert te.container_id == ""
    assert te.image_digest == ""
    assert (run.status, run.status_reason) == ("failed", "scheduler_error")
    for where, text in [*everything_stored_and_served(run, te, alice).items(), ("process log", caplog.text)]:
        assert wrong not in text, where
        assert registry.password not in text, where


def test_a_task_without_credentials_never_borrows_the_worker_users_own_docker_login(
    push, registry, docker_client, names, tmp_path, monkeypatch, settings
):
    import base64
    import json

    image = push("not-for-everyone")
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    login = base64.b64encode(f"{registry.user}:{registry.password}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": login}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))

    # The control: with this saved login, a plain docker SDK pull (no explicit credentials) succeeds...
    repository, tag = image.reference.rsplit(":", 1)
    plain = docker.from_env()
    try:
        plain.api.pull(repository, tag=tag)
        plain.images.remove(image.reference, force=True)
    finally:
        plain.close()

    # ...but a task without registry_auth pulls anonymously and is refused.
    settings.GOFER_DOCKER_NETWORK_MODE = "none"
    scheduler = DockerScheduler()
    with pytest.raises(NoSuchImage) as caught:
        scheduler.start(ContainerSpec(name=names(), image=image.reference))
    assert any(why in str(caught.value) for why in AUTH_FAILURES), caught.value
    assert not is_local(docker_client, image.reference)
