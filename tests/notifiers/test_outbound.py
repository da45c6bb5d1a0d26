"""Where a delivery may go, against real receivers on loopback: addresses written in the resolver's legacy forms
are judged as addresses at subscription time, a name that resolves to a public address for the check and to
loopback for the connection (DNS rebinding) is not connected to, a redirect is not followed, an answer is read only
to a bound, and every attempt is counted in ``gofer.notifier.deliveries``."""

from __future__ import annotations

import socket

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from notifiers import outbound
from notifiers import services as notifiers
from notifiers.models import Notice
from telemetry import otel
from tests.notifiers.conftest import SUBSCRIPTIONS, deliver_all, finished_run, install, subscribe
from tests.notifiers.receivers import Answer, Receiver


@pytest.mark.parametrize("host", ["2130706433", "127.1", "0x7f000001", "0177.0.0.1", "0"])
def test_an_address_in_a_legacy_form_is_refused_at_subscription_naming_the_setting(pipeline, alice, host, db):
    install("notify-webhook")  # no allowed_hosts: loopback and unspecified addresses are not destinations
    body = {
        "extension_id": "notify-webhook",
        "subscription_id": "legacy",
        "settings": {"when": "run_finished", "url": f"http://{host}:8080/api/tokens/bootstrap"},
    }
    response = alice.post(SUBSCRIPTIONS, body)
    assert response.status_code == 400, response.json()
    assert response.json()["errors"][0]["field"] == "settings.url"
    assert "not an allowed destination" in response.json()["message"]


def test_a_port_of_zero_is_refused_at_subscription(pipeline, webhook_kind, alice):
    body = {
        "extension_id": "notify-webhook",
        "subscription_id": "zero",
        "settings": {"when": "run_finished", "url": "https://example.com:0/hook"},
    }
    response = alice.post(SUBSCRIPTIONS, body)
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "settings.url"


@pytest.fixture
def rebinding_dns(monkeypatch):
    """A name server for ``rebind.example`` that answers a public address once, then loopback (an attacker's
    name with a short TTL); every other name resolves as usual."""
    real = socket.getaddrinfo
    answers = ["93.184.216.34"]

    def getaddrinfo(host, port, *args, **kwargs):
        if host != "rebind.example":
            return real(host, port, *args, **kwargs)
        address = answers.pop(0) if answers else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_name_that_rebinds_to_loopback_after_the_check_is_not_connected_to(
    pipeline, receiver, queued, rebinding_dns, db
):
    install("notify-webhook")  # loopback is not listed
    subscribe(pipeline, "notify-webhook", "hook", when="run_finished", url=f"http://rebind.example:{receiver.port}/in")
    finished_run(pipeline, "failed")
    [attempt] = deliver_all(queued)
    assert receiver.received == []
    assert attempt.outcome == "failed"  # a refusal is permanent, like the check's own
    assert "refused" in attempt.error and "127.0.0.1" in attempt.error and "loopback" in attempt.error


def test_a_redirect_is_not_followed(pipeline, webhook_kind, receiver, queued):
    elsewhere = Receiver()
    try:
        receiver.default = Answer(307, b"moved", {"Location": f"{elsewhere.url}/inside"})
        subscribe(pipeline, "notify-webhook", "hook", when="run_finished", url=f"{receiver.url}/in")
        finished_run(pipeline, "failed")
        [attempt] = deliver_all(queued)
        assert elsewhere.received == []
        assert len(receiver.received) == 1
        assert attempt.outcome == "failed" and attempt.status_code == 307
    finally:
        elsewhere.stop()


def test_an_answer_is_read_only_up_to_its_bound(receiver, settings):
    receiver.default = Answer(200, b"x" * (3 * 1024 * 1024))
    policy = outbound.policy_for({"allowed_hosts": "127.0.0.1"}, "notify-webhook")
    response = outbound.request("POST", f"{receiver.url}/big", policy=policy, data=b"{}")
    assert response.status_code == 200
    assert len(response.content) == outbound.MAX_RESPONSE_BYTES
    assert outbound.excerpt(response) == "x" * 512


@pytest.fixture
def metric_reader():
    reader = InMemoryMetricReader()
    otel.configure(metric_readers=[reader], prometheus=True)
    try:
        yield reader
    finally:
        otel.reset()
        otel.configure_from_environment()


def test_every_attempt_is_counted_by_kind_and_outcome(pipeline, webhook_kind, receiver, queued, metric_reader, admin):
    subscribe(pipeline, "notify-webhook", "hook", when="run_finished", url=f"{receiver.url}/in")
    receiver.answers = [Answer(503, b"busy")]
    finished_run(pipeline, "failed")
    [retrying] = deliver_all(queued)
    assert retrying.outcome == "retrying"
    notice = Notice.objects.get()
    assert notifiers.deliver(notice.pk, now=retrying.retry_at).outcome == "succeeded"
    receiver.default = Answer(404, b"gone")
    finished_run(pipeline, "failed")
    [given_up] = deliver_all(queued)
    assert given_up.outcome == "failed"

    points = {
        (point.attributes["kind"], point.attributes["outcome"]): point.value
        for rm in metric_reader.get_metrics_data().resource_metrics
        for scope in rm.scope_metrics
        for metric in scope.metrics
        if metric.name == "gofer.notifier.deliveries"
        for point in metric.data.data_points
    }
    assert points == {
        ("notify-webhook", "failed"): 1,
        ("notify-webhook", "delivered"): 1,
        ("notify-webhook", "given_up"): 1,
    }
    text = admin.get("/metrics").content.decode()
    assert 'gofer_notifier_deliveries_total{kind="notify-webhook",outcome="delivered"} 1.0' in text
