"""Health: a subscription whose firing fails goes to error with the reason, fires nothing, and heals by itself when
the cause is gone; the kill switch skips firings without blaming anyone; state and firings change together."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from access import services as access
from events.models import Event
from pipelines import services as pipelines
from secretstore import services as secrets
from tests.triggers.conftest import SUBSCRIPTIONS, runs_of, sign, subscription
from triggers import firing
from triggers.models import Firing


def _every_10s(alice, **settings: str) -> None:
    response = alice.post(
        SUBSCRIPTIONS,
        {"extension_id": "interval", "subscription_id": "often", "settings": {"every": "10s", **settings}},
    )
    assert response.status_code == 201, response.content


def _due(pipeline) -> dt.datetime:
    return subscription(pipeline, "interval", "often").next_fire_at + dt.timedelta(milliseconds=10)


def test_a_disabled_pipeline_puts_the_subscription_in_error_until_it_is_enabled_again(
    builtins, pipeline, alice, settings
):
    _every_10s(alice)
    pipelines.set_pipeline_state(pipeline, "disabled")
    firing.tick(_due(pipeline))
    sub = subscription(pipeline, "interval", "often")
    assert sub.status == "error" and sub.status_reason == "failed"
    assert "disabled" in sub.status_description
    shown = alice.get(f"{SUBSCRIPTIONS}/interval/often").json()["subscription"]
    assert shown["status"] == "error" and shown["status_reason"]["reason"] == "failed"
    assert Firing.objects.get().outcome == "failed"
    # While in error, nothing fires; a re-check while the cause remains changes nothing.
    later = timezone.now() + dt.timedelta(seconds=settings.GOFER_TRIGGER_HEAL_SECONDS + 1)
    firing.tick(later)
    assert subscription(pipeline, "interval", "often").status == "error"
    assert runs_of(pipeline) == []
    pipelines.set_pipeline_state(pipeline, "active")
    firing.tick(later + dt.timedelta(seconds=settings.GOFER_TRIGGER_HEAL_SECONDS + 1))
    healed = subscription(pipeline, "interval", "often")
    assert healed.status == "active" and healed.status_reason == "" and healed.next_fire_at is not None
    assert list(Event.objects.filter(kind__startswith="subscription_").values_list("kind", flat=True)) == [
        "subscription_error",
        "subscription_healed",
    ]


def test_a_secret_reference_that_stops_resolving_is_an_error_naming_the_setting(builtins, pipeline, alice, settings):
    secrets.put_pipeline_secret(pipeline, "hook-key", "value-1")
    alice.post(
        SUBSCRIPTIONS,
        {"extension_id": "webhook", "subscription_id": "hook", "settings": {"secret": "pipeline_secret{{hook-key}}"}},
    )
    secrets.delete_pipeline_secret(pipeline, "hook-key")
    body = b"{}"
    answer = alice.client.post(
        "/api/external/webhook/team-a/build/hook",
        body,
        content_type="application/json",
        HTTP_X_GOFER_SIGNATURE_256=sign("value-1", body),
    )
    assert answer.status_code == 401
    sub = subscription(pipeline, "webhook", "hook")
    assert sub.status == "error" and sub.status_reason == "not_found" and "secret" in sub.status_description
    secrets.put_pipeline_secret(pipeline, "hook-key", "value-2")
    firing.tick(timezone.now() + dt.timedelta(seconds=settings.GOFER_TRIGGER_HEAL_SECONDS + 1))
    assert subscription(pipeline, "webhook", "hook").status == "active"


def test_a_subscription_to_a_missing_secret_is_refused_at_once(builtins, pipeline, alice):
    response = alice.post(
        SUBSCRIPTIONS,
        {"extension_id": "webhook", "subscription_id": "hook", "settings": {"secret": "pipeline_secret{{missing}}"}},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "settings.secret"


def test_the_kill_switch_skips_firings_and_the_subscription_stays_active(builtins, pipeline, alice):
    _every_10s(alice)
    access.update_system_preferences(True)
    firing.tick(_due(pipeline))
    assert runs_of(pipeline) == []
    assert subscription(pipeline, "interval", "often").status == "active"
    assert Firing.objects.get().outcome == "skipped"
    assert Event.objects.filter(kind="skipped").count() == 1
    access.update_system_preferences(False)
    firing.tick(_due(pipeline))
    assert len(runs_of(pipeline)) == 1
    assert Event.objects.filter(kind="fired").count() == 1


def test_re_enabling_an_error_subscription_is_refused_while_the_cause_remains(builtins, pipeline, alice):
    _every_10s(alice)
    pipelines.set_pipeline_state(pipeline, "disabled")
    firing.tick(_due(pipeline))
    assert alice.patch(f"{SUBSCRIPTIONS}/interval/often", {"status": "active"}).status_code == 409
    assert alice.patch(f"{SUBSCRIPTIONS}/interval/often", {"status": "disabled"}).status_code == 204
    pipelines.set_pipeline_state(pipeline, "active")
    assert alice.patch(f"{SUBSCRIPTIONS}/interval/often", {"status": "active"}).status_code == 204
    assert subscription(pipeline, "interval", "often").status == "active"
