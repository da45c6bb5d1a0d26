"""The trigger test suite every kind passes (roadmap: "create a test suite that triggers can run against"):
subscribe and fire, unsubscribe stops firing, disable and enable, bad settings rejected, a restart keeps
subscriptions, an outsider gets 404, a disabled extension fires nothing.

Each kind is driven by a small ``Kind`` that knows its settings and how to make it fire: the ticker at the
subscription's next firing (interval, cron), a signed delivery (webhook, GitHub), or an event forwarded to the
real third-party extension process (``tester``, tests/support/extension_server.py, slower: it needs daphne).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from access import services as access
from pipelines import services as pipelines
from runs.models import Run
from tests.conftest import deployed_pipeline
from tests.triggers.conftest import GITHUB_SECRET, SUBSCRIPTIONS, install_body, sign
from triggers import firing, services, supervisor, ticker
from triggers.models import Subscription

PAYLOADS = Path(__file__).with_name("payloads")
_deliveries = itertools.count(1)


@dataclass
class Kind:
    extension_id: str
    settings: dict[str, str]
    bad: dict[str, str]
    bad_field: str
    context: dict[str, Any] = field(default_factory=dict)

    def fire(self, client: Any, pipeline: Any, subscription_id: str) -> None:
        """Do what makes this kind fire once (whether or not the subscription lets it)."""
        row = Subscription.objects.filter(pipeline=pipeline, extension_id=self.extension_id).first()
        at = (row.next_fire_at if row and row.next_fire_at else timezone.now()) + dt.timedelta(milliseconds=100)
        firing.tick(at)

    def restart(self) -> None:
        """What a process that starts does: nothing of a subscription lives outside the database."""
        ticker._state.update(seeded=False, renewed=None, supervised=None)
        services.ensure_builtin_extensions()


class Webhook(Kind):
    def fire(self, client: Any, pipeline: Any, subscription_id: str) -> None:
        body = json.dumps({"n": next(_deliveries)}).encode()
        client.post(
            f"/api/external/webhook/team-a/{pipeline.slug}/{subscription_id}",
            body,
            content_type="application/json",
            HTTP_X_GOFER_SIGNATURE_256=sign("hook-secret", body),
        )


class GitHub(Kind):
    def fire(self, client: Any, pipeline: Any, subscription_id: str) -> None:
        body = (PAYLOADS / "push.json").read_bytes()
        client.post(
            "/api/external/github",
            body,
            content_type="application/json",
            HTTP_X_GITHUB_EVENT="push",
            HTTP_X_GITHUB_DELIVERY=f"delivery-{next(_deliveries)}",
            HTTP_X_HUB_SIGNATURE_256=sign(GITHUB_SECRET, body),
        )


class ThirdParty(Kind):
    def fire(self, client: Any, pipeline: Any, subscription_id: str) -> None:
        import requests

        answer = requests.post(
            f"{self.context['server'].url}/api/external/tester", json={"subscription_id": subscription_id}, timeout=15
        )
        self.context["answers"] = [*self.context.get("answers", []), (answer.status_code, answer.text)]

    def restart(self) -> None:
        from triggers.models import Extension

        supervisor.start_service(Extension.objects.get(id="tester"))


KINDS = {
    "interval": lambda: Kind("interval", {"every": "10s"}, {"every": "soon"}, "settings.every"),
    "cron": lambda: Kind("cron", {"expression": "*/5 * * * *"}, {"expression": "61 * * * *"}, "settings.expression"),
    "webhook": lambda: Webhook(
        "webhook", {"secret": "hook-secret"}, {"secret": "x", "colour": "red"}, "settings.colour"
    ),
    "github": lambda: GitHub(
        "github",
        {"repository": "Octocat/Hello-World", "event_filter": "push"},
        {"repository": "nope", "event_filter": "push"},
        "settings.repository",
    ),
    "tester": lambda: ThirdParty("tester", {"label": "one"}, {"colour": "red"}, "settings.colour"),
}


@pytest.fixture(
    params=[
        *list(KINDS)[:4],
        # The extension process calls a daphne process: what the test writes must be committed.
        pytest.param("tester", marks=[pytest.mark.slow, pytest.mark.django_db(transaction=True)]),
    ]
)
def kind(request):
    chosen = KINDS[request.param]()
    request.getfixturevalue("builtins")
    request.getfixturevalue("namespaces")
    if request.param == "tester":
        # A truncated database (the marker, not the fixture, made it transactional): the migrations' rows again.
        access.ensure_system_roles()
        pipelines.ensure_default_namespace()
        server = request.getfixturevalue("live")
        admin = request.getfixturevalue("admin")
        assert admin.post("/api/extensions", install_body()).status_code == 201
        chosen.context["server"] = server
    return chosen


@pytest.fixture
def pipeline(namespaces):
    return deployed_pipeline("team-a")


def runs(pipeline) -> int:
    return Run.objects.filter(pipeline=pipeline).count()


def subscribe(alice, kind: Kind, subscription_id: str = "suite") -> Any:
    return alice.post(
        SUBSCRIPTIONS,
        {"extension_id": kind.extension_id, "subscription_id": subscription_id, "settings": kind.settings},
    )


def test_subscribing_then_firing_starts_one_run(kind, pipeline, alice):
    created = subscribe(alice, kind)
    assert created.status_code == 201, created.content
    assert created.json()["subscription"]["status"] == "active"
    kind.fire(alice.client, pipeline, "suite")
    assert runs(pipeline) == 1, kind.context.get("answers")
    run = Run.objects.get(pipeline=pipeline)
    assert run.initiator["extension_id"] == kind.extension_id and "suite" in run.initiator["subscription_id"]
    listed = alice.get(SUBSCRIPTIONS).json()["subscriptions"]
    assert [(s["extension_id"], s["subscription_id"]) for s in listed] == [(kind.extension_id, "suite")]


def test_unsubscribing_stops_firing(kind, pipeline, alice):
    subscribe(alice, kind)
    assert alice.delete(f"{SUBSCRIPTIONS}/{kind.extension_id}/suite").status_code == 204
    assert alice.get(f"{SUBSCRIPTIONS}/{kind.extension_id}/suite").status_code == 404
    kind.fire(alice.client, pipeline, "suite")
    assert runs(pipeline) == 0


def test_disabling_stops_firing_and_enabling_starts_again(kind, pipeline, alice):
    subscribe(alice, kind)
    assert alice.patch(f"{SUBSCRIPTIONS}/{kind.extension_id}/suite", {"status": "disabled"}).status_code == 204
    again = alice.patch(f"{SUBSCRIPTIONS}/{kind.extension_id}/suite", {"status": "disabled"})
    assert again.status_code == 204 and again.headers["Gofer-Changed"] == "false"
    kind.fire(alice.client, pipeline, "suite")
    assert runs(pipeline) == 0
    assert alice.patch(f"{SUBSCRIPTIONS}/{kind.extension_id}/suite", {"status": "active"}).status_code == 204
    kind.fire(alice.client, pipeline, "suite")
    assert runs(pipeline) == 1


def test_bad_settings_are_a_400_naming_the_setting(kind, pipeline, alice):
    response = alice.post(
        SUBSCRIPTIONS, {"extension_id": kind.extension_id, "subscription_id": "suite", "settings": kind.bad}
    )
    assert response.status_code == 400, response.content
    assert kind.bad_field in [e["field"] for e in response.json()["errors"]]
    assert not Subscription.objects.exists()


def test_a_duplicate_subscription_is_a_409_and_an_unknown_extension_a_404(kind, pipeline, alice):
    subscribe(alice, kind)
    assert subscribe(alice, kind).status_code == 409
    unknown = alice.post(SUBSCRIPTIONS, {"extension_id": "no-such-ext", "subscription_id": "suite", "settings": {}})
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["field"] == "extension_id"
    missing = alice.post(
        "/api/namespaces/team-a/pipelines/nope/subscriptions",
        {"extension_id": kind.extension_id, "subscription_id": "suite", "settings": kind.settings},
    )
    assert missing.status_code == 404


def test_a_restart_keeps_subscriptions(kind, pipeline, alice):
    subscribe(alice, kind)
    kind.restart()
    kind.fire(alice.client, pipeline, "suite")
    assert runs(pipeline) == 1


def test_an_outsider_gets_404(kind, pipeline, alice, charlie):
    subscribe(alice, kind)
    one = f"{SUBSCRIPTIONS}/{kind.extension_id}/suite"
    assert charlie.get(SUBSCRIPTIONS).status_code == 404
    assert charlie.get(one).status_code == 404
    assert charlie.patch(one, {"status": "disabled"}).status_code == 404
    assert charlie.delete(one).status_code == 404
    assert (
        charlie.post(
            SUBSCRIPTIONS, {"extension_id": kind.extension_id, "subscription_id": "x-y", "settings": kind.settings}
        ).status_code
        == 404
    )
    assert Subscription.objects.get().status == "active"


def test_a_disabled_extension_fires_nothing(kind, pipeline, alice, admin):
    subscribe(alice, kind)
    assert admin.patch(f"/api/extensions/{kind.extension_id}", {"enable": False}).status_code == 204
    kind.fire(alice.client, pipeline, "suite")
    assert runs(pipeline) == 0
    assert admin.patch(f"/api/extensions/{kind.extension_id}", {"enable": True}).status_code == 204
    kind.fire(alice.client, pipeline, "suite")
    assert runs(pipeline) == 1
