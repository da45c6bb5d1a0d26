"""The kinds that write with the operator's credentials (notify-slack's bot token or webhook, notify-github's token or
App, notify-email's SMTP server) serve only the namespaces, repositories and recipients their install settings
list: refused when subscribing (403 naming extension_id, 400 naming the setting) and again before every attempt,
since the install settings and a run's variables can change after the subscription was accepted."""

from __future__ import annotations

import pytest

from notifiers import services as notifiers
from notifiers.models import Notice
from runs.models import Run
from tests.conftest import deployed_pipeline
from tests.notifiers.conftest import SUBSCRIPTIONS, committed, deliver_all, finished_run, install, subscribe
from tests.notifiers.receivers import GitHubStandIn

SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "ghp_operator_token_0123"
TEAM_B = "/api/namespaces/team-b/pipelines/build/subscriptions"


@pytest.fixture
def standin():
    server = GitHubStandIn(app_id="1234", public_key=None)
    yield server
    server.stop()


def github(standin, **config: str):
    return install("notify-github", token=TOKEN, api_url=standin.url, allowed_hosts="127.0.0.1", **config)


def failed_run_with(pipeline, queued: list, variables: list[dict]) -> Run:
    """A failed run whose variables say which repository and commit (as the github trigger or a caller sets them),
    its rules evaluated again with them."""
    run = finished_run(pipeline, "failed")
    Run.objects.filter(pk=run.pk).update(variables=variables)
    Notice.objects.filter(run=run).delete()
    queued.clear()
    with committed():
        notifiers.evaluate_run(run.pk)
    return run


def variables(repository: str) -> list[dict]:
    return [
        {"key": "GOFER_EXTENSION_GITHUB_REPOSITORY", "value": repository, "source": "run_options"},
        {"key": "GOFER_EXTENSION_GITHUB_HEAD_COMMIT_ID", "value": SHA, "source": "run_options"},
    ]


@pytest.mark.parametrize(
    ("kind_id", "config", "values"),
    [
        ("notify-slack", {"webhook_url": "https://hooks.slack.com/services/T0/B0/X"}, {}),
        ("notify-github", {"token": TOKEN}, {"repository": "octo/widgets"}),
        ("notify-email", {}, {"to": "dev@example.com"}),
    ],
)
def test_a_namespace_the_install_does_not_list_gets_403_naming_extension_id(
    alice, charlie, pipeline, kind_id, config, values
):
    deployed_pipeline("team-b")
    install(kind_id, namespaces="team-a, ops-*", **config)
    body = {"extension_id": kind_id, "subscription_id": "notice", "settings": {"when": "run_failed", **values}}
    refused = charlie.post(TEAM_B, body)
    assert refused.status_code == 403, refused.content
    assert refused.json()["errors"][0]["field"] == "extension_id"
    assert "namespaces" in refused.json()["errors"][0]["message"]
    assert alice.post(SUBSCRIPTIONS, body).status_code == 201


def test_the_webhook_kind_has_no_namespace_list_and_stays_open(charlie, db, namespaces):
    deployed_pipeline("team-b")
    install("notify-webhook")
    body = {"extension_id": "notify-webhook", "subscription_id": "notice", "settings": {"when": "run_failed"}}
    body["settings"]["url"] = "https://hooks.example.com/gofer"
    assert charlie.post(TEAM_B, body).status_code == 201


def test_an_install_setting_that_is_not_a_list_of_globs_is_a_400_naming_it(admin, db):
    for key, value in (("namespaces", "team a"), ("repositories", "octo/*;rm"), ("namespaces", "team-a,<b>")):
        response = admin.post(
            "/api/extensions?force=true",
            {"id": "notify-github", "image": "builtin:notify-github", "settings": {"token": TOKEN, key: value}},
        )
        assert response.status_code == 400, (key, value)
        assert response.json()["errors"][0]["field"] == f"settings.{key}"


def test_a_repository_outside_the_install_list_is_a_400_naming_settings_repository(alice, pipeline, standin):
    github(standin, repositories="octo/widgets, acme/{namespace}-*")
    body = {"extension_id": "notify-github", "subscription_id": "status", "settings": {"when": "run_failed"}}
    for repository in ("octo/other", "acme/team-b-api", "acme/secrets"):
        body["settings"]["repository"] = repository
        refused = alice.post(SUBSCRIPTIONS, body)
        assert refused.status_code == 400, repository
        assert refused.json()["errors"][0]["field"] == "settings.repository"
    for number, repository in enumerate(("Octo/Widgets", "acme/team-a-api")):
        body["settings"]["repository"], body["subscription_id"] = repository, f"status{number}"
        assert alice.post(SUBSCRIPTIONS, body).status_code == 201, repository


def test_a_run_variable_naming_an_unlisted_repository_is_not_sent(pipeline, standin, queued):
    github(standin, repositories="octo/widgets")
    subscribe(pipeline, "notify-github", "status", when="run_failed")  # the repository comes from the run
    failed_run_with(pipeline, queued, variables("victim/elsewhere"))
    [attempt] = deliver_all(queued)
    assert attempt.outcome == "failed" and "victim/elsewhere" in attempt.error and "repositories" in attempt.error
    assert standin.received == []  # the operator's token went nowhere

    failed_run_with(pipeline, queued, variables("octo/widgets"))
    [attempt] = deliver_all(queued)
    assert attempt.outcome == "succeeded", attempt.error
    assert [r.path for r in standin.received] == [f"/repos/octo/widgets/statuses/{SHA}"]


def test_a_namespace_taken_off_the_list_after_subscribing_is_not_sent_to(pipeline, standin, queued):
    github(standin)
    subscribe(pipeline, "notify-github", "status", when="run_failed", repository="octo/widgets")
    github(standin, namespaces="ops")
    failed_run_with(pipeline, queued, variables("octo/widgets"))
    [attempt] = deliver_all(queued)
    assert attempt.outcome == "failed" and "namespace team-a" in attempt.error
    assert standin.received == []


def test_a_bot_token_posts_only_to_the_channels_the_install_lists(alice, pipeline, receiver, queued):
    bot = {"token": "xoxb-operator-bot", "api_url": f"{receiver.url}/api", "allowed_hosts": "127.0.0.1"}
    install("notify-slack", channels="#builds, #ci-*", **bot)
    body = {"extension_id": "notify-slack", "subscription_id": "chat", "settings": {"when": "run_failed"}}
    body["settings"]["channel"] = "#general"
    refused = alice.post(SUBSCRIPTIONS, body)
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "settings.channel"
    body["settings"]["channel"] = "#CI-web"
    assert alice.post(SUBSCRIPTIONS, body).status_code == 201

    install("notify-slack", channels="#builds", **bot)  # narrowed after subscribing
    finished_run(pipeline, "failed")
    [attempt] = deliver_all(queued)
    assert attempt.outcome == "failed" and "channels" in attempt.error
    assert receiver.received == []


def test_an_address_outside_the_recipients_list_is_a_400_naming_settings_to(alice, pipeline):
    install("notify-email", recipients="*@acme.example, oncall@partner.example")
    body = {"extension_id": "notify-email", "subscription_id": "mail", "settings": {"when": "run_failed"}}
    body["settings"]["to"] = "dev@acme.example, anyone@elsewhere.example"
    refused = alice.post(SUBSCRIPTIONS, body)
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "settings.to"
    assert "anyone@elsewhere.example" in refused.json()["errors"][0]["message"]
    body["settings"]["to"] = "dev@ACME.example, oncall@partner.example"
    assert alice.post(SUBSCRIPTIONS, body).status_code == 201


def test_recipients_narrowed_after_subscribing_are_not_mailed(pipeline, queued, settings):
    install("notify-email")
    subscribe(pipeline, "notify-email", "mail", when="run_failed", to="dev@elsewhere.example")
    install("notify-email", recipients="*@acme.example")
    finished_run(pipeline, "failed")
    [attempt] = deliver_all(queued)
    assert attempt.outcome == "failed" and "recipients" in attempt.error


CREDENTIALS = [
    ("notify-slack", {"webhook_url": "https://hooks.slack.com/services/T0/B0/X"}, {}, None),
    ("notify-slack", {"token": "xoxb-operator-bot"}, {"channel": "#builds"}, ("channels", "#builds", "channel")),
    ("notify-github", {"token": TOKEN}, {"repository": "octo/widgets"}, ("repositories", "octo/*", "repository")),
    ("notify-email", {}, {"to": "dev@acme.example"}, ("recipients", "*@acme.example", "to")),
]


@pytest.mark.parametrize(("kind_id", "config", "values", "target"), CREDENTIALS)
def test_in_sandbox_mode_nothing_of_the_operators_is_usable_until_the_operator_lists_it(
    alice, pipeline, settings, kind_id, config, values, target
):
    settings.GOFER_SANDBOX = True
    install(kind_id, **config)
    body = {"extension_id": kind_id, "subscription_id": "notice", "settings": {"when": "run_failed", **values}}
    refused = alice.post(SUBSCRIPTIONS, body)
    assert refused.status_code == 403 and refused.json()["errors"][0]["field"] == "extension_id"

    install(kind_id, namespaces="team-*", **config)
    if target is not None:  # the namespace is listed, the repository or address not yet
        key, glob, field = target
        refused = alice.post(SUBSCRIPTIONS, body)
        assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == f"settings.{field}"
        install(kind_id, namespaces="team-*", **{key: glob}, **config)
    assert alice.post(SUBSCRIPTIONS, body).status_code == 201
