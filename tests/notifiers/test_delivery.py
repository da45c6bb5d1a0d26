"""Delivery against real HTTP receivers on loopback: the webhook's body and signature, Slack's text and blocks,
retries with backoff and Retry-After, bounded attempts, every attempt recorded and masked, the subscription's
error and healing, and the outbound policy at subscription and at delivery time."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

from django.utils import timezone

from notifiers import services as notifiers
from notifiers.models import Delivery, Notice
from tests.notifiers.conftest import SUBSCRIPTIONS, deliver_all, finished_run, install, subscribe
from tests.notifiers.receivers import Answer
from triggers.models import Subscription

SECRET = "webhook-signing-secret-0123"


def test_the_webhook_posts_the_notice_signed_with_the_secret(pipeline, webhook_kind, receiver, queued, settings):
    settings.GOFER_PUBLIC_URL = "https://gofer.example.com"
    subscribe(pipeline, "notify-webhook", "hook", when="run_failed", url=f"{receiver.url}/in", secret=SECRET)
    run = finished_run(pipeline, "failed", tasks={"compile": "failed", "test": "skipped"})
    [attempt] = deliver_all(queued)
    assert attempt.outcome == "succeeded" and attempt.status_code == 200 and attempt.response == "ok"

    [got] = receiver.received
    expected = "sha256=" + hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.method == "POST" and got.path == "/in"
    assert got.headers["X-Gofer-Signature-256"] == expected
    assert got.headers["Content-Type"] == "application/json"
    body = got.json()
    assert body["notice"] == "triggered" and body["rule"] == "run_failed"
    assert (body["namespace_id"], body["pipeline_id"], body["run_id"]) == ("team-a", "build", run.number)
    assert (body["state"], body["status"]) == ("complete", "failed")
    assert body["failed_tasks"] == ["compile"]
    assert body["duration_seconds"] == 30.0
    assert body["started"] == run.started.isoformat() and body["ended"] == run.ended.isoformat()
    assert body["url"] == f"https://gofer.example.com/api/namespaces/team-a/pipelines/build/runs/{run.number}"
    assert SECRET not in got.body.decode()
    assert Notice.objects.get().state == "delivered"


def test_slack_gets_text_and_blocks_and_a_429_waits_at_least_its_retry_after(pipeline, receiver, queued):
    install("notify-slack", webhook_url=f"{receiver.url}/services/T000/B000/XXXXSECRET", allowed_hosts="127.0.0.1")
    subscribe(pipeline, "notify-slack", "chat", when="run_finished", channel="#builds")
    receiver.answers = [Answer(429, b"rate limited", {"Retry-After": "30"})]
    run = finished_run(pipeline, "failed", tasks={"compile": "failed"})

    [first] = deliver_all(queued)
    assert first.outcome == "retrying" and first.status_code == 429
    notice = Notice.objects.get()
    assert notice.state == "pending" and notice.next_attempt_at >= first.started + dt.timedelta(seconds=30)
    # Not due yet: no worker sends it early, neither a queued message nor the sweep.
    assert notifiers.deliver(notice.pk) is None
    assert notifiers.requeue_open_notices() == 0
    later = notice.next_attempt_at + dt.timedelta(seconds=1)
    assert notifiers.requeue_open_notices(later) == 1
    second = notifiers.deliver(notice.pk, now=later)
    assert second.outcome == "succeeded" and second.attempt == 2

    assert len(receiver.received) == 2
    message = receiver.received[1].json()
    assert message["channel"] == "#builds"
    assert f"team-a/build run {run.number} failed" in message["text"]
    assert [b["type"] for b in message["blocks"]] == ["section", "section", "context"]
    fields = " ".join(f["text"] for f in message["blocks"][1]["fields"])
    assert "*Status*\nfailed" in fields and "*Duration*\n30s" in fields and "*Failing tasks*\ncompile" in fields
    assert f"/runs/{run.number}|" in message["blocks"][0]["text"]["text"]
    # The webhook URL is the credential: never in what is recorded.
    for delivery in Delivery.objects.all():
        assert "XXXXSECRET" not in json.dumps([delivery.error, delivery.response])


def test_attempts_are_bounded_and_failing_deliveries_put_the_subscription_in_error_until_one_succeeds(
    pipeline, webhook_kind, receiver, queued
):
    subscription = subscribe(pipeline, "notify-webhook", "hook", when="run_finished", url=f"{receiver.url}/in")
    receiver.default = Answer(503, b"down for maintenance")
    finished_run(pipeline, "successful")
    notice = Notice.objects.get()
    now = timezone.now()
    for _ in range(3):  # GOFER_NOTIFIER_MAX_ATTEMPTS in these tests
        notifiers.deliver(notice.pk, now=now)
        now += dt.timedelta(minutes=10)
    assert notifiers.deliver(notice.pk, now=now) is None  # no fourth attempt
    notice.refresh_from_db()
    attempts = list(Delivery.objects.filter(notice=notice).order_by("attempt"))
    assert [a.outcome for a in attempts] == ["retrying", "retrying", "failed"]
    assert all(a.status_code == 503 and a.response == "down for maintenance" for a in attempts)
    assert attempts[0].retry_at is not None and attempts[2].retry_at is None
    assert notice.state == "failed" and "503" in notice.last_error
    # One failed notice: still active (GOFER_NOTIFIER_ERROR_AFTER is 2 here).
    assert Subscription.objects.get(pk=subscription.pk).status == "active"

    receiver.default = Answer(400, b"no such hook")  # permanent: one attempt
    queued.clear()
    finished_run(pipeline, "successful")
    [attempt] = deliver_all(queued)
    assert attempt.outcome == "failed" and attempt.attempt == 1
    subscription.refresh_from_db()
    assert subscription.status == "error" and subscription.status_reason == "failed"
    assert "the last 2 deliveries failed" in subscription.status_description

    # Still decided and sent while in error; the first success heals it.
    receiver.default = Answer(200, b"ok")
    finished_run(pipeline, "failed")
    [attempt] = deliver_all(queued)
    assert attempt.outcome == "succeeded"
    subscription.refresh_from_db()
    assert subscription.status == "active" and subscription.status_reason == ""


def test_a_response_that_echoes_the_secret_is_stored_masked(pipeline, webhook_kind, receiver, queued):
    subscribe(pipeline, "notify-webhook", "hook", when="run_finished", url=f"{receiver.url}/in", secret=SECRET)
    receiver.default = Answer(500, f"bad signature for key {SECRET}".encode())
    finished_run(pipeline, "failed")
    [attempt] = deliver_all(queued)
    assert attempt.response.startswith("bad signature for key ") and SECRET not in attempt.response


def test_the_response_is_kept_to_its_first_512_bytes(pipeline, webhook_kind, receiver, queued):
    subscribe(pipeline, "notify-webhook", "hook", when="run_finished", url=f"{receiver.url}/in")
    receiver.default = Answer(200, b"x" * 5000)
    finished_run(pipeline, "failed")
    [attempt] = deliver_all(queued)
    assert attempt.response == "x" * 512


def test_an_unlisted_loopback_url_is_refused_at_subscription_naming_the_setting(pipeline, alice, db):
    install("notify-webhook")  # no allowed_hosts: loopback is not a destination
    body = {
        "extension_id": "notify-webhook",
        "subscription_id": "local",
        "settings": {"when": "run_finished", "url": "http://127.0.0.1:8080/api/tokens/bootstrap"},
    }
    response = alice.post(SUBSCRIPTIONS, body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "settings.url"
    assert "loopback" in response.json()["message"] and "allowed_hosts" in response.json()["message"]
    body["settings"]["url"] = "http://localhost:8080/x"
    assert alice.post(SUBSCRIPTIONS, body).json()["errors"][0]["field"] == "settings.url"
    assert not Subscription.objects.filter(subscription_id="local").exists()


def test_the_destination_is_checked_again_at_delivery(pipeline, webhook_kind, receiver, queued):
    subscribe(pipeline, "notify-webhook", "hook", when="run_finished", url=f"{receiver.url}/in")
    install("notify-webhook")  # the operator takes loopback off the list after the subscription was made
    finished_run(pipeline, "failed")
    [attempt] = deliver_all(queued)
    assert attempt.outcome == "failed" and "refused" in attempt.error and "loopback" in attempt.error
    assert receiver.received == []


def test_a_notice_claimed_by_one_worker_is_not_sent_by_another(pipeline, webhook_kind, receiver, queued):
    subscribe(pipeline, "notify-webhook", "hook", when="run_finished", url=f"{receiver.url}/in")
    finished_run(pipeline, "failed")
    notice = Notice.objects.get()
    assert notifiers.claim(notice.pk) is not None
    assert notifiers.deliver(notice.pk) is None  # the second worker loses the claim
    assert notifiers.requeue_open_notices() == 0  # the claim has not lapsed
    assert receiver.received == []
    lapsed = timezone.now() + dt.timedelta(seconds=121)  # GOFER_NOTIFIER_CLAIM_SECONDS: the first worker died
    assert notifiers.requeue_open_notices(lapsed) == 1
    assert notifiers.deliver(notice.pk, now=lapsed).outcome == "succeeded"
    assert len(receiver.received) == 1


def test_a_run_whose_completion_signal_was_lost_is_decided_and_delivered_by_the_sweep(
    pipeline, webhook_kind, receiver, queued
):
    from django.utils import timezone as tz

    from runs.models import Run
    from tests.notifiers.conftest import committed

    subscribe(pipeline, "notify-webhook", "hook", when="run_failed", url=f"{receiver.url}/in")
    config = pipeline.configs.get(state="live")
    # The engine committed the run's completion and the process died before the signal's receivers ran.
    Run.objects.create(
        namespace_id="team-a",
        pipeline=pipeline,
        number=1,
        config=config,
        config_version=config.version,
        state="complete",
        status="failed",
        started=tz.now(),
        ended=tz.now(),
    )
    assert not Notice.objects.exists()
    with committed():
        notifiers.sweep(force=True)
    assert deliver_all(queued)[0].outcome == "succeeded"
    assert receiver.received[0].json()["run_id"] == 1


def test_slack_with_a_bot_token_posts_to_chat_post_message_in_the_channel(pipeline, receiver, queued, alice):
    install("notify-slack", token="xoxb-bot-token-0123456789", api_url=f"{receiver.url}/api", allowed_hosts="127.0.0.1")
    body = {"extension_id": "notify-slack", "subscription_id": "chat", "settings": {"when": "run_failed"}}
    missing = alice.post(SUBSCRIPTIONS, body)
    assert missing.status_code == 400 and missing.json()["errors"][0]["field"] == "settings.channel"
    subscribe(pipeline, "notify-slack", "chat", when="run_failed", channel="C0123")
    receiver.answers = [Answer(200, b'{"ok": false, "error": "channel_not_found"}'), Answer(200, b'{"ok": true}')]
    finished_run(pipeline, "failed")
    [refused] = deliver_all(queued)
    assert refused.outcome == "failed" and "channel_not_found" in refused.error  # permanent
    finished_run(pipeline, "failed")
    [sent] = deliver_all(queued)
    assert sent.outcome == "succeeded"
    got = receiver.received[-1]
    assert got.path == "/api/chat.postMessage" and got.headers["Authorization"] == "Bearer xoxb-bot-token-0123456789"
    assert got.json()["channel"] == "C0123" and got.json()["blocks"]
    assert all("xoxb-bot-token" not in d.error + d.response for d in Delivery.objects.all())


def test_a_refused_install_url_is_a_400_naming_the_install_setting(admin, db):
    body = {
        "id": "notify-slack",
        "image": "builtin:notify-slack",
        "settings": {"webhook_url": "http://10.0.0.5/services/x"},
    }
    response = admin.post("/api/extensions?force=true", body)
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "settings.webhook_url"
    body["settings"]["allowed_hosts"] = "10.0.0.0/8"
    assert admin.post("/api/extensions?force=true", body).status_code == 201
