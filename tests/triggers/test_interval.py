"""The interval extension end to end in one process: subscribe through the API, the ticker fires it once per due
time, runs record who started them."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from runs.choices import VariableSource
from tests.triggers.conftest import SUBSCRIPTIONS, runs_of, subscription, tick_after
from triggers import firing


def test_a_subscription_fires_once_per_period_and_records_its_initiator(builtins, pipeline, alice):
    response = alice.post(
        SUBSCRIPTIONS, {"extension_id": "interval", "subscription_id": "often", "settings": {"every": "10s"}}
    )
    assert response.status_code == 201, response.content
    body = response.json()["subscription"]
    assert body["status"] == "active" and body["settings"] == {"every": "10s"}
    assert body["next_firing"] > 0

    assert tick_after(5) is not None
    assert runs_of(pipeline) == []
    tick_after(11)
    tick_after(11)  # a second look at the same moment starts nothing more
    runs = runs_of(pipeline)
    assert len(runs) == 1
    assert runs[0].initiator["extension_id"] == "interval"
    assert runs[0].initiator["subscription_id"] == "often"
    assert {v["source"] for v in runs[0].variables} == {VariableSource.EXTENSION}
    shown = alice.get("/api/namespaces/team-a/pipelines/build/runs/1").json()["run"]["initiator"]
    assert shown["extension_id"] == "interval" and shown["subscription_id"] == "often"


def test_every_below_min_duration_is_a_400_naming_the_setting(builtins, pipeline, alice):
    response = alice.post(
        SUBSCRIPTIONS, {"extension_id": "interval", "subscription_id": "tiny", "settings": {"every": "500ms"}}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "settings.every"


def test_a_missed_firing_fires_once_after_the_jitter_not_once_per_period(builtins, pipeline, alice):
    alice.post(SUBSCRIPTIONS, {"extension_id": "interval", "subscription_id": "often", "settings": {"every": "10s"}})
    # Workers were away for an hour: 360 periods fell due.
    later = timezone.now() + dt.timedelta(hours=1)
    firing.tick(later)
    assert runs_of(pipeline) == []
    moved = subscription(pipeline, "interval", "often").next_fire_at
    assert later + dt.timedelta(seconds=1) <= moved <= later + dt.timedelta(seconds=2)
    firing.tick(moved)
    firing.tick(moved + dt.timedelta(seconds=1))
    assert len(runs_of(pipeline)) == 1
    assert subscription(pipeline, "interval", "often").next_fire_at == moved + dt.timedelta(seconds=10)


def test_an_idle_tick_costs_one_query_and_a_lease_renewal_one_more(
    builtins, pipeline, alice, django_assert_num_queries
):
    from triggers import ticker

    alice.post(SUBSCRIPTIONS, {"extension_id": "interval", "subscription_id": "often", "settings": {"every": "1h"}})
    with django_assert_num_queries(1):
        assert firing.tick() is not None
    assert ticker.take_lease()
    with django_assert_num_queries(1):
        assert ticker.take_lease()
