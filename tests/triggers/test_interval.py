"""The interval extension end to end in one process: subscribe through the API, the ticker fires it once per due
time, runs record who started them."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from runs.choices import VariableSource
from tests.triggers.conftest import SUBSCRIPTIONS, runs_of, subscription, tick_after
from triggers import firing
from triggers.durations import InvalidDuration, parse_duration


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


@pytest.mark.parametrize("every", ["99999999999h", "9" * 400 + "h", "87600h1s", "99999999999h99999999999h"])
def test_an_every_too_long_to_count_is_a_400_naming_the_setting_not_a_500(builtins, pipeline, alice, every):
    response = alice.post(
        SUBSCRIPTIONS, {"extension_id": "interval", "subscription_id": "huge", "settings": {"every": every}}
    )
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == "settings.every"
    assert "longer than ten years" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("key", ["min_duration", "jitter_min", "jitter_max"])
def test_an_install_duration_too_long_to_count_is_a_400_naming_it(builtins, admin, key):
    response = admin.post(
        "/api/extensions?force=true",
        {"id": "interval", "image": "builtin:interval", "settings": {key: "99999999999h"}},
    )
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == f"settings.{key}"


@pytest.mark.parametrize("text", ["99999999999h", "9" * 400 + "s", "1" + "0" * 30 + "ns"])
def test_parse_duration_refuses_huge_numbers_with_invalid_duration(text):
    with pytest.raises(InvalidDuration, match="longer than ten years"):
        parse_duration(text)


def test_parse_duration_keeps_go_forms_up_to_ten_years():
    assert parse_duration("1h30m") == parse_duration("1.5h") == dt.timedelta(minutes=90)
    assert parse_duration("500ms") == dt.timedelta(milliseconds=500)
    assert parse_duration("87600h") == dt.timedelta(days=3650)
    assert parse_duration("0") == dt.timedelta(0)


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
