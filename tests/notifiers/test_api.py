"""The deliveries route (``GET .../subscriptions/{extension_id}/{subscription_id}/deliveries``), tenancy, and
credentials that never come back: not in the extension, the subscription, the deliveries or the events."""

from __future__ import annotations

import json

from events.models import Event
from tests.notifiers.conftest import SUBSCRIPTIONS, deliver_all, finished_run, install, subscribe
from tests.notifiers.receivers import Answer

DELIVERIES = f"{SUBSCRIPTIONS}/notify-webhook/hook/deliveries"
SECRET = "signing-secret-9876543210"
SLACK_URL_SECRET = "T111/B222/slacksecretpath0123"


def _three_attempts(pipeline, receiver, queued):
    subscribe(pipeline, "notify-webhook", "hook", when="run_finished", url=f"{receiver.url}/in", secret=SECRET)
    receiver.answers = [Answer(400, b"first refused")]
    finished_run(pipeline, "failed")
    finished_run(pipeline, "successful")
    finished_run(pipeline, "failed")
    return deliver_all(queued)


def test_deliveries_are_listed_newest_first_and_paginated(pipeline, webhook_kind, receiver, queued, bob):
    attempts = _three_attempts(pipeline, receiver, queued)
    response = bob.get(DELIVERIES)  # read permission on subscriptions is enough
    assert response.status_code == 200
    listed = response.json()["deliveries"]
    assert [d["id"] for d in listed] == sorted((a.pk for a in attempts), reverse=True)
    assert [d["run_id"] for d in listed] == [3, 2, 1]
    oldest = listed[-1]
    assert oldest["outcome"] == "failed" and oldest["status_code"] == 400 and oldest["response"] == "first refused"
    assert oldest["notice"] == "triggered" and oldest["rule"] == "run_finished" and oldest["attempt"] == 1
    assert isinstance(oldest["started"], int) and oldest["started"] > 0
    page = bob.get(DELIVERIES, limit="1", offset="1").json()["deliveries"]
    assert [d["run_id"] for d in page] == [2]
    assert [d["run_id"] for d in bob.get(DELIVERIES, reverse="true").json()["deliveries"]] == [1, 2, 3]
    assert bob.get(DELIVERIES, limit="0").status_code == 400


def test_another_tenant_gets_404_and_an_unknown_subscription_is_404(
    pipeline, webhook_kind, receiver, queued, charlie, alice
):
    _three_attempts(pipeline, receiver, queued)
    assert charlie.get(DELIVERIES).status_code == 404
    missing = alice.get(f"{SUBSCRIPTIONS}/notify-webhook/nope/deliveries")
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "subscription_id"


def test_credentials_never_come_back(pipeline, receiver, queued, admin, alice, db):
    install(
        "notify-slack",
        webhook_url=f"{receiver.url}/services/{SLACK_URL_SECRET}",
        allowed_hosts="127.0.0.1",
    )
    install("notify-webhook", allowed_hosts="127.0.0.1")
    subscribe(pipeline, "notify-slack", "chat", when="run_finished")
    subscribe(pipeline, "notify-webhook", "hook", when="run_finished", url=f"{receiver.url}/in", secret=SECRET)
    # Each receiver echoes the credential it was sent with (Slack's is its URL): stored masked all the same.
    receiver.answer = lambda got: Answer(
        500, f"echo {SLACK_URL_SECRET if got.path.startswith('/services/') else SECRET}".encode()
    )
    finished_run(pipeline, "failed")
    deliver_all(queued)

    seen = [
        admin.get("/api/extensions/notify-slack").content,
        admin.get("/api/extensions").content,
        alice.get(SUBSCRIPTIONS).content,
        alice.get(f"{SUBSCRIPTIONS}/notify-webhook/hook").content,
        alice.get(DELIVERIES).content,
        alice.get(f"{SUBSCRIPTIONS}/notify-slack/chat/deliveries").content,
        json.dumps(list(Event.objects.values_list("details", flat=True))).encode(),
    ]
    for body in seen:
        assert SECRET.encode() not in body and SLACK_URL_SECRET.encode() not in body
    settings = {
        s["key"]: s["value"]
        for s in admin.get("/api/extensions/notify-slack").json()["extension"]["registration"]["settings"]
    }
    assert settings["webhook_url"] == "[redacted]" and settings["allowed_hosts"] == "127.0.0.1"
    hook = alice.get(f"{SUBSCRIPTIONS}/notify-webhook/hook").json()["subscription"]
    assert hook["settings"]["secret"] == "[redacted]"
    # The attempts were made, and their answers stored, masked.
    assert alice.get(DELIVERIES).json()["deliveries"][0]["response"] == "echo ********"
    slack = alice.get(f"{SUBSCRIPTIONS}/notify-slack/chat/deliveries").json()["deliveries"][0]
    assert slack["response"] == "echo ********" and slack["outcome"] == "retrying"
    assert Event.objects.filter(kind="notified").count() == 2


def test_the_notifier_kinds_are_built_in_extensions_of_kind_notifier(admin, db):
    for kind_id in ("notify-webhook", "notify-slack", "notify-github", "notify-email"):
        extension = admin.get(f"/api/extensions/{kind_id}").json()["extension"]
        assert extension["kind"] == "notifier" and extension["registration"]["image"] == f"builtin:{kind_id}"
        params = {p["key"]: p for p in extension["documentation"]["pipeline_subscription_params"]}
        assert {"when", "count", "threshold", "window", "duration", "task", "recovery"} <= set(params)
        assert params["when"]["required"] is True
    slack = admin.get("/api/extensions/notify-slack").json()["extension"]["documentation"]["config_params"]
    assert {p["key"]: p["sensitive"] for p in slack}["webhook_url"] is True
