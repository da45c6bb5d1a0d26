"""notify-github against a local stand-in of GitHub's API (tests/notifiers/receivers.py::GitHubStandIn): commit
statuses with a token, check runs with a GitHub App (its JWT signed RS256 and checked with the App's public key,
the installation token, in_progress at the start and completed with the conclusion)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from notifiers import services as notifiers
from notifiers.kinds import github
from notifiers.models import Delivery, Notice
from runs.models import Run
from tests.notifiers.conftest import SUBSCRIPTIONS, committed, deliver_all, install, subscribe
from tests.notifiers.receivers import GitHubStandIn

SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "ghp_personal_token_do_not_leak_0123"


@pytest.fixture
def app_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def standin(app_key):
    server = GitHubStandIn(app_id="1234", public_key=app_key.public_key())
    github._tokens.clear()
    yield server
    server.stop()


def _pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def start_and_finish(pipeline, status: str, variables: list[dict]) -> Run:
    """A run started by the github trigger (its variables), admitted, then completed with ``status``."""
    config = pipeline.configs.get(state="live")
    run = Run.objects.create(
        namespace_id="team-a",
        pipeline=pipeline,
        number=1,
        config=config,
        config_version=config.version,
        state="running",
        variables=variables,
    )
    with committed():
        notifiers.run_started(run.pk)
    return run


def complete(run: Run, status: str) -> None:
    from django.utils import timezone

    Run.objects.filter(pk=run.pk).update(state="complete", status=status, ended=timezone.now())
    with committed():
        notifiers.evaluate_run(run.pk)


TRIGGER_VARIABLES = [
    {"key": "GOFER_EXTENSION_GITHUB_REPOSITORY", "value": "octo/widgets", "source": "extension"},
    {"key": "GOFER_EXTENSION_GITHUB_HEAD_COMMIT_ID", "value": SHA, "source": "extension"},
]


def test_with_a_token_the_commit_gets_pending_then_success(pipeline, standin, queued):
    install("notify-github", token=TOKEN, api_url=standin.url, allowed_hosts="127.0.0.1")
    subscribe(pipeline, "notify-github", "status", when="run_finished")
    run = start_and_finish(pipeline, "successful", TRIGGER_VARIABLES)
    deliver_all(queued)
    complete(run, "successful")
    deliver_all(queued)

    statuses = [r for r in standin.received if r.path == f"/repos/octo/widgets/statuses/{SHA}"]
    assert [r.json()["state"] for r in statuses] == ["pending", "success"]
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in statuses)
    assert statuses[1].json()["context"] == "gofer/build"
    assert statuses[1].json()["target_url"].endswith("/api/namespaces/team-a/pipelines/build/runs/1")
    assert set(Notice.objects.values_list("kind", "state")) == {("started", "delivered"), ("triggered", "delivered")}
    for delivery in Delivery.objects.all():
        assert TOKEN not in delivery.response + delivery.error


def test_with_an_app_a_check_run_is_created_in_progress_and_completed_with_its_conclusion(
    pipeline, standin, app_key, queued
):
    encoded = base64.b64encode(_pem(app_key).encode()).decode()  # the github trigger's form: base64 of the PEM
    install(
        "notify-github",
        app_id="1234",
        app_installation="99",
        app_key=encoded,
        api_url=standin.url,
        allowed_hosts="127.0.0.1",
    )
    subscribe(pipeline, "notify-github", "checks", when="run_finished", context="ci/gofer")
    run = start_and_finish(pipeline, "failed", TRIGGER_VARIABLES)
    deliver_all(queued)
    complete(run, "failed")
    deliver_all(queued)

    paths = [(r.method, r.path) for r in standin.received]
    assert paths == [
        ("POST", "/app/installations/99/access_tokens"),
        ("POST", "/repos/octo/widgets/check-runs"),
        ("PATCH", "/repos/octo/widgets/check-runs/4242"),  # the installation token is reused
    ]
    created, completed = standin.received[1].json(), standin.received[2].json()
    assert created["status"] == "in_progress" and created["head_sha"] == SHA and created["name"] == "ci/gofer"
    assert completed["status"] == "completed" and completed["conclusion"] == "failure"
    assert Notice.objects.get(kind="started").remote_id == "4242"
    assert all(d.outcome == "succeeded" for d in Delivery.objects.all())


def test_a_jwt_signed_with_another_key_is_refused_by_the_stand_in(pipeline, standin, queued):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    install(
        "notify-github",
        app_id="1234",
        app_installation="99",
        app_key=_pem(other),
        api_url=standin.url,
        allowed_hosts="127.0.0.1",
    )
    subscribe(pipeline, "notify-github", "checks", when="run_finished")
    start_and_finish(pipeline, "failed", TRIGGER_VARIABLES)
    [attempt] = deliver_all(queued)
    assert attempt.outcome == "failed" and attempt.status_code == 401  # permanent: not retried


def test_commit_variable_and_repository_settings_pick_the_commit(pipeline, standin, queued):
    install("notify-github", token=TOKEN, api_url=standin.url, allowed_hosts="127.0.0.1")
    subscribe(pipeline, "notify-github", "status", when="run_failed", repository="octo/other", commit_variable="SHA")
    run = start_and_finish(pipeline, "failed", [{"key": "SHA", "value": SHA[:12], "source": "run_options"}])
    complete(run, "failed")
    deliver_all(queued)
    [status] = standin.received
    assert status.path == f"/repos/octo/other/statuses/{SHA[:12]}" and status.json()["state"] == "failure"


def test_a_run_without_a_commit_fails_its_delivery_with_the_reason(pipeline, standin, queued):
    install("notify-github", token=TOKEN, api_url=standin.url, allowed_hosts="127.0.0.1")
    subscribe(pipeline, "notify-github", "status", when="run_failed", repository="octo/widgets")
    run = start_and_finish(pipeline, "failed", [])
    complete(run, "failed")
    [attempt] = deliver_all(queued)
    assert attempt.outcome == "failed" and "GOFER_EXTENSION_GITHUB_HEAD_COMMIT_ID" in attempt.error
    assert standin.received == []


def test_a_run_variable_naming_a_repository_with_dot_segments_is_not_sent(pipeline, standin, queued):
    install("notify-github", token=TOKEN, api_url=standin.url, allowed_hosts="127.0.0.1")
    subscribe(pipeline, "notify-github", "status", when="run_failed")
    variables = [
        {"key": "GOFER_EXTENSION_GITHUB_REPOSITORY", "value": "../..", "source": "run_options"},
        {"key": "GOFER_EXTENSION_GITHUB_HEAD_COMMIT_ID", "value": SHA, "source": "run_options"},
    ]
    run = start_and_finish(pipeline, "failed", variables)
    complete(run, "failed")
    [attempt] = deliver_all(queued)
    assert attempt.outcome == "failed" and "no repository" in attempt.error
    assert standin.received == []  # the operator's token went nowhere


def test_install_and_subscription_settings_are_checked(alice, pipeline, admin, standin):
    bad = admin.post(
        "/api/extensions?force=true",
        {"id": "notify-github", "image": "builtin:notify-github", "settings": {"app_id": "1", "app_key": "nope"}},
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "settings.app_installation"
    install("notify-github")  # neither a token nor an App
    body = {"extension_id": "notify-github", "subscription_id": "statuses", "settings": {"when": "run_finished"}}
    response = alice.post(SUBSCRIPTIONS, body)
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "extension_id"
    install("notify-github", token=TOKEN)
    body["settings"]["repository"] = "not a repo"
    assert alice.post(SUBSCRIPTIONS, body).json()["errors"][0]["field"] == "settings.repository"
    # Dot segments would climb out of /repos/ and send the operator's token to another route of the API.
    for climbing in ("../..", "owner/..", "../name", "owner/."):
        body["settings"]["repository"] = climbing
        refused = alice.post(SUBSCRIPTIONS, body)
        assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "settings.repository", climbing


def test_a_check_run_whose_start_was_never_delivered_is_created_completed(pipeline, standin, app_key, queued):
    install(
        "notify-github",
        app_id="1234",
        app_installation="99",
        app_key=_pem(app_key),
        api_url=standin.url,
        allowed_hosts="127.0.0.1",
    )
    subscribe(pipeline, "notify-github", "checks", when="run_finished")
    run = start_and_finish(pipeline, "successful", TRIGGER_VARIABLES)
    queued.clear()  # the start notice's message is lost and the run ends before the sweep comes
    complete(run, "successful")
    deliver_all(queued)
    [_, created] = standin.received
    assert created.method == "POST" and created.path == "/repos/octo/widgets/check-runs"
    assert created.json()["status"] == "completed" and created.json()["conclusion"] == "success"
    assert created.json()["head_sha"] == SHA
