"""Image names must not make the Docker daemon fetch arbitrary URLs (issue 8, finding 7).

The audit: an image named ``127.0.0.1:18181/x/y`` made the daemon fetch Gofer's own 404 page into the task's status;
``127.0.0.1:1`` said "connection refused": a port scanner. Registries are checked against the operator's allowlist
at registration and again just before a pull; pull errors shown to users are summarised, never the remote body.
"""

from __future__ import annotations

import uuid

import pytest

from kernel.rbac import SYSTEM_PRINCIPAL
from runs import services as runs
from runs.models import Run, TaskExecution
from runs.schedulers import get_scheduler, memory
from runs.schedulers.base import ContainerSpec, NoSuchImage
from runs.schedulers.docker import DockerScheduler, summarise_pull_error
from tests.conftest import deployed_pipeline, simple_config
from tests.support import engine as engine_support

CONFIGS = "/api/namespaces/team-a/pipelines/{p}/configs"


def config_with_image(pipeline_id: str, image: str) -> dict:
    return {"id": pipeline_id, "name": pipeline_id, "tasks": [{"id": "t", "image": image, "command": ["true"]}]}


@pytest.mark.parametrize(
    "image",
    [
        "127.0.0.1:18181/x/y",
        "127.0.0.1:1/x",
        "localhost:5000/x",
        "10.0.0.5:5000/team/app",
        "[::1]:5000/x",
        "169.254.169.254/latest/meta-data",
    ],
)
def test_registering_an_image_from_a_private_or_loopback_registry_is_a_400_naming_the_image(alice, image):
    response = alice.post(CONFIGS.format(p="probe"), {"config": config_with_image("probe", image)})
    assert response.status_code == 400
    body = response.json()
    assert body["errors"][0]["field"] == "config.tasks[0].image"
    assert "GOFER_ALLOWED_REGISTRIES" in body["errors"][0]["message"]


def test_a_registry_the_operator_lists_may_be_used(alice, settings):
    settings.GOFER_ALLOWED_REGISTRIES = ["127.0.0.1:18181"]
    response = alice.post(CONFIGS.format(p="listed"), {"config": config_with_image("listed", "127.0.0.1:18181/x/y")})
    assert response.status_code == 201


def test_public_registries_may_be_turned_off_leaving_only_the_listed_ones(alice, settings):
    settings.GOFER_ALLOW_PUBLIC_REGISTRIES = False
    settings.GOFER_ALLOWED_REGISTRIES = ["ghcr.io"]
    assert (
        alice.post(CONFIGS.format(p="ghcr"), {"config": config_with_image("ghcr", "ghcr.io/a/b:1")}).status_code == 201
    )
    refused = alice.post(CONFIGS.format(p="hub"), {"config": config_with_image("hub", "busybox:latest")})
    assert refused.status_code == 400
    assert "docker.io is not an allowed destination" in refused.json()["message"]


def test_the_registry_is_checked_again_before_the_pull_and_nothing_is_started(transactional_db, settings, monkeypatch):
    """Registered while listed; the operator removes it from the list before the run: the task fails before any
    container exists."""
    settings.GOFER_SCHEDULER = "memory"
    get_scheduler.cache_clear()
    memory.reset()
    inline = engine_support.install(monkeypatch)
    from pipelines.models import Namespace

    Namespace.objects.create(id="reg-a", name="reg-a")
    settings.GOFER_ALLOWED_REGISTRIES = ["127.0.0.1:18181"]
    pipeline = deployed_pipeline("reg-a", "later", config_with_image("later", "127.0.0.1:18181/x/y"))
    settings.GOFER_ALLOWED_REGISTRIES = []
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    inline.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete", timeout=30)
    te = TaskExecution.objects.get(run=run)
    assert (te.status, te.status_reason) == ("failed", "failed_precondition")
    assert "127.0.0.1:18181 is a loopback address" in te.status_description
    assert te.container_id == ""
    memory.reset()
    get_scheduler.cache_clear()


@pytest.mark.parametrize(
    ("raw", "summary"),
    [
        (
            'Get "http://127.0.0.1:18181/v2/": dial tcp 127.0.0.1:18181: connect: connection refused',
            "could not be reached",
        ),
        ("Head https://r.example/v2/x/manifests/1: unauthorized: authentication required", "refused access"),
        (
            "manifest for 127.0.0.1:18181/x/y:latest not found: manifest unknown: <html>Gofer 404 page</html>",
            "no such image",
        ),
        ("lookup nowhere.example: no such host", "could not be reached"),
        ("something else entirely: <h1>secret internal page</h1>", "the pull failed"),
    ],
)
def test_pull_errors_are_summarised_without_the_remote_body(raw, summary):
    said = summarise_pull_error(raw)
    assert summary in said
    for leak in ("127.0.0.1", "html", "<h1>", "secret internal page", "r.example"):
        assert leak not in said


@pytest.mark.docker
def test_a_pull_from_an_unreachable_listed_registry_says_so_without_the_engines_words(busybox_image, settings):
    settings.GOFER_DOCKER_NETWORK_MODE = "none"
    engine = DockerScheduler()
    try:
        with pytest.raises(NoSuchImage) as caught:
            engine.start(ContainerSpec(name=f"gofer-test-{uuid.uuid4().hex[:8]}", image="127.0.0.1:1/x/y:1"))
    finally:
        engine.close()
    message = str(caught.value)
    assert message.endswith("could not be pulled: the registry could not be reached")
    assert "dial tcp" not in message and "connection refused" not in message


def test_the_example_configs_use_public_images(alice):
    assert alice.post(CONFIGS.format(p="build"), {"config": simple_config()}).status_code == 201


@pytest.mark.docker
def test_the_engine_checks_the_registry_with_dns_just_before_it_pulls(settings, monkeypatch):
    """A name that passed registration resolves, at pull time, to a private address: nothing is pulled. (DNS is
    faked for this one name: there is no resolver here to make it answer so.)"""
    from kernel import outbound

    real = outbound.socket.getaddrinfo
    monkeypatch.setattr(
        outbound.socket,
        "getaddrinfo",
        lambda host, *a, **k: (
            [(2, 1, 6, "", ("10.1.2.3", 0))] if host == "registry.rebind.example" else real(host, *a, **k)
        ),
    )
    settings.GOFER_DOCKER_NETWORK_MODE = "none"
    engine = DockerScheduler()
    policy = outbound.policy([], allow_public=True, setting="GOFER_ALLOWED_REGISTRIES")
    try:
        with pytest.raises(NoSuchImage, match="resolves to 10.1.2.3, a private address"):
            engine.start(
                ContainerSpec(
                    name=f"gofer-test-{uuid.uuid4().hex[:8]}",
                    image="registry.rebind.example/team/app:1",
                    registry_policy=policy,
                )
            )
    finally:
        engine.close()
