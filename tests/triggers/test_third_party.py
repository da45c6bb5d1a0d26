"""A third-party extension, for real: tests/support/extension_server.py run by Gofer as a service through the local
scheduler, speaking the protocol over HTTP, calling back a real daphne with its own token."""

from __future__ import annotations

import json
import time

import pytest
import requests

from events.models import Event
from runs.models import Run
from runs.schedulers import get_scheduler
from secretstore import services as secrets
from tests.conftest import ApiCaller, deployed_pipeline
from tests.support.processes import Server, Worker
from tests.triggers.conftest import install_body
from triggers import supervisor
from triggers.models import Extension, Subscription

pytestmark = pytest.mark.slow

SUBSCRIPTIONS = "/api/namespaces/team-a/pipelines/build/subscriptions"


@pytest.fixture
def tester(live, admin):
    response = admin.post("/api/extensions", install_body())
    assert response.status_code == 201, response.content
    return Extension.objects.get(id="tester")


def debug(admin) -> dict:
    return json.loads(admin.get("/api/extensions/tester/debug").json()["info"])


def as_extension(extension: Extension) -> ApiCaller:
    from rest_framework.test import APIClient

    return ApiCaller(APIClient(), extension.token_secret, None, "extension")


def forward(live: Server, subscription_id: str) -> requests.Response:
    return requests.post(f"{live.url}/api/external/tester", json={"subscription_id": subscription_id}, timeout=15)


def test_an_installed_extension_runs_is_documented_and_gets_resolved_subscriptions(tester, admin, alice, namespaces):
    shown = admin.get("/api/extensions/tester").json()["extension"]
    assert shown["state"] == "running" and shown["protocol_version"] == "0.9.1"
    assert [p["key"] for p in shown["documentation"]["pipeline_subscription_params"]] == ["label", "token"]
    assert {"key": "greeting", "value": "hi", "source": "system"} in shown["registration"]["settings"]

    pipeline = deployed_pipeline("team-a")
    secrets.put_pipeline_secret(pipeline, "api-key", "the-real-value-123")
    response = alice.post(
        SUBSCRIPTIONS,
        {
            "extension_id": "tester",
            "subscription_id": "mine",
            "settings": {"label": "one", "token": "pipeline_secret{{api-key}}"},
        },
    )
    assert response.status_code == 201, response.content
    assert response.json()["subscription"]["settings"]["token"] == "pipeline_secret{{api-key}}"
    received = debug(admin)["subscriptions"]["mine"]
    # Resolved at use time, with the namespace checks: the extension got the value, never the placeholder.
    assert received["pipeline_subscription_params"] == {"label": "one", "token": "the-real-value-123"}

    refused = alice.post(
        SUBSCRIPTIONS, {"extension_id": "tester", "subscription_id": "nope", "settings": {"label": "refuse"}}
    )
    assert refused.status_code == 400 and "refused" in refused.json()["message"]
    assert not Subscription.objects.filter(subscription_id="nope").exists()
    unknown = alice.post(
        SUBSCRIPTIONS, {"extension_id": "tester", "subscription_id": "two", "settings": {"colour": "x"}}
    )
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["field"] == "settings.colour"


def test_a_forwarded_event_makes_the_extension_start_a_run_with_its_own_token(live, tester, alice, namespaces):
    pipeline = deployed_pipeline("team-a")
    alice.post(SUBSCRIPTIONS, {"extension_id": "tester", "subscription_id": "mine", "settings": {"label": "one"}})
    response = forward(live, "mine")
    assert response.status_code == 201, response.text
    run = Run.objects.get(pipeline=pipeline, number=response.json()["run"]["run_id"])
    assert run.initiator["kind"] == "extension"
    assert run.initiator["extension_id"] == "tester" and run.initiator["subscription_id"] == "mine"
    assert run.variables == [{"key": "GOFER_EXTENSION_TEST_LABEL", "value": "one", "source": "extension"}]
    assert forward(live, "unknown").status_code == 400


def test_the_extension_token_has_least_privilege_and_dies_with_the_extension(tester, alice, admin, namespaces):
    deployed_pipeline("team-a")
    deployed_pipeline("team-a", "other")
    alice.post(SUBSCRIPTIONS, {"extension_id": "tester", "subscription_id": "mine", "settings": {"label": "one"}})
    token = as_extension(Extension.objects.get(id="tester"))
    assert token.post("/api/namespaces/team-a/pipelines/build/runs", {"variables": {}}).status_code == 201
    assert token.post("/api/namespaces/team-a/pipelines/other/runs", {"variables": {}}).status_code == 404
    assert token.delete("/api/namespaces/team-a/pipelines/build").status_code == 403
    assert token.get("/api/namespaces/team-a/pipelines/build/secrets").status_code == 403
    mine = token.get("/api/extensions/tester/subscriptions")
    assert [s["subscription_id"] for s in mine.json()["subscriptions"]] == ["mine"]
    assert token.get("/api/extensions/interval/subscriptions").status_code == 403
    assert (
        token.client.post(
            "/api/extensions/tester/objects/state",
            b"x",
            content_type="application/octet-stream",
            HTTP_AUTHORIZATION=f"Bearer {token.token}",
        ).status_code
        == 201
    )
    assert token.get("/api/extensions/other-ext/objects").status_code == 403
    # Disabled subscription: no more runs on its pipeline.
    alice.patch(f"{SUBSCRIPTIONS}/tester/mine", {"status": "disabled"})
    assert token.post("/api/namespaces/team-a/pipelines/build/runs", {"variables": {}}).status_code == 404
    assert admin.delete("/api/extensions/tester").status_code == 204
    assert token.get("/api/extensions/tester/subscriptions").status_code == 401
    assert not Subscription.objects.filter(extension_id="tester").exists()


def test_an_extension_of_another_major_version_is_refused_with_a_clear_error(live, admin):
    response = admin.post("/api/extensions", install_body(protocol_version="1.2.0"))
    assert response.status_code == 400, response.content
    assert "1.2.0" in response.json()["message"] and "0.9.1" in response.json()["message"]
    assert response.json()["errors"][0]["field"] == "image"
    assert not Extension.objects.filter(id="tester").exists()


def test_installing_twice_is_a_409_unless_forced_which_updates_in_place(tester, admin, alice, namespaces):
    deployed_pipeline("team-a")
    alice.post(SUBSCRIPTIONS, {"extension_id": "tester", "subscription_id": "mine", "settings": {"label": "one"}})
    assert admin.post("/api/extensions", install_body()).status_code == 409
    forced = admin.post("/api/extensions?force=true", install_body(greeting="bonjour"))
    assert forced.status_code == 201, forced.content
    assert {"key": "greeting", "value": "bonjour", "source": "system"} in forced.json()["extension"]["registration"][
        "settings"
    ]
    assert Extension.objects.get(id="tester").generation == 2
    # The restarted service got its subscription again.
    assert "mine" in debug(admin)["subscriptions"]


def wait_for(condition, timeout: float, what: str, processes=()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    detail = "\n\n".join(p.output()[-3000:] for p in processes)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{detail}")


def test_an_extension_that_stops_answering_is_marked_restarted_and_its_subscriptions_resent(
    live, tester, alice, admin, namespaces
):
    deployed_pipeline("team-a")
    alice.post(SUBSCRIPTIONS, {"extension_id": "tester", "subscription_id": "mine", "settings": {"label": "one"}})
    worker = Worker(
        workers=1,
        GOFER_EXTENSION_SCHEDULER="local",
        GOFER_EXTENSION_GOFER_URL=live.url,
        GOFER_EXTENSION_HEALTH_SECONDS="1",
        GOFER_EXTENSION_HEALTH_FAILURES="1",
        GOFER_TRIGGER_TICK_SECONDS="1",
        GOFER_TRIGGER_HEAL_SECONDS="1",
    )
    try:
        first = Extension.objects.get(id="tester")
        get_scheduler("local").kill(first.container_id)
        wait_for(
            lambda: Subscription.objects.get(subscription_id="mine").status == "error",
            20,
            "the subscription in error",
            [worker],
        )
        reason = Subscription.objects.get(subscription_id="mine").status_description
        assert "not answering" in reason
        wait_for(
            lambda: (
                Extension.objects.get(id="tester").state == "running"
                and Extension.objects.get(id="tester").generation > first.generation
            ),
            30,
            "a restart",
            [worker],
        )
        wait_for(lambda: Subscription.objects.get(subscription_id="mine").status == "active", 20, "healing", [worker])
        assert "mine" in debug(admin)["subscriptions"]
        kinds = list(Event.objects.filter(kind__startswith="subscription_").values_list("kind", flat=True))
        assert kinds == ["subscription_error", "subscription_healed"]
        decisions = list(supervisor.extension_log("tester").filter(source="gofer").values_list("text", flat=True))
        assert any(line.startswith("exited:") for line in decisions)
    finally:
        worker.stop()


def test_an_extensions_own_output_reaches_its_log(tester):
    supervisor.pump_logs(Extension.objects.get(id="tester"))
    lines = list(supervisor.extension_log("tester").exclude(source="gofer").values_list("text", flat=True))
    assert any("tester: hi on 127.0.0.1" in line for line in lines)


def test_deleting_a_pipeline_unsubscribes_it_at_the_extension(tester, alice, admin, namespaces):
    deployed_pipeline("team-a")
    alice.post(SUBSCRIPTIONS, {"extension_id": "tester", "subscription_id": "mine", "settings": {"label": "one"}})
    assert "mine" in debug(admin)["subscriptions"]
    assert alice.delete("/api/namespaces/team-a/pipelines/build").status_code == 204
    assert debug(admin)["subscriptions"] == {}
