"""The cron extension: standard 5-field and Gofer's 6-field (trailing year) expressions, time zones, validation, and
no drift: each firing is computed from the previous one's scheduled time."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.triggers.conftest import SUBSCRIPTIONS, runs_of, subscription
from triggers import firing
from triggers.builtins.cron import next_occurrence

START = dt.datetime(2027, 3, 27, 23, 59, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("expression", "timezone", "expected"),
    [
        ("*/15 * * * *", "UTC", dt.datetime(2027, 3, 28, 0, 0, tzinfo=dt.UTC)),
        ("0 12 * * * 2028", "UTC", dt.datetime(2028, 1, 1, 12, 0, tzinfo=dt.UTC)),  # Gofer's form: a year
        # 02:30 does not exist in Paris on the 28th (clocks jump from 02:00 to 03:00): it fires at 03:00 local.
        ("30 2 * * *", "Europe/Paris", dt.datetime(2027, 3, 28, 1, 0, tzinfo=dt.UTC)),
        ("@daily", "UTC", dt.datetime(2027, 3, 28, 0, 0, tzinfo=dt.UTC)),
    ],
)
def test_occurrences_follow_the_expression_in_its_time_zone(expression, timezone, expected):
    assert next_occurrence(expression, timezone, START) == expected


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"expression": "61 * * * *"}, "settings.expression"),
        ({"expression": "* * *"}, "settings.expression"),
        ({"expression": "0 0 1 1 * 2020"}, "settings.expression"),  # never again
        ({"expression": "0 * * * *", "timezone": "Mars/Olympus"}, "settings.timezone"),
        ({"expression": "99999999999 * * * *"}, "settings.expression"),
        ({"expression": "0 0 * * * 99999999999"}, "settings.expression"),
        ({"expression": "0-99999999999 * * * *"}, "settings.expression"),
        ({}, "settings.expression"),
    ],
)
def test_invalid_settings_are_a_400_naming_the_setting(builtins, pipeline, alice, given, field):
    response = alice.post(SUBSCRIPTIONS, {"extension_id": "cron", "subscription_id": "bad-one", "settings": given})
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == field


def test_a_cron_subscription_fires_at_each_occurrence_without_drift(builtins, pipeline, alice):
    created = alice.post(
        SUBSCRIPTIONS,
        {"extension_id": "cron", "subscription_id": "quarter", "settings": {"expression": "*/15 * * * *"}},
    )
    assert created.status_code == 201
    first = subscription(pipeline, "cron", "quarter").next_fire_at
    assert first.minute % 15 == 0 and first.second == 0
    # The ticker is 3 s late: the next occurrence is still on the quarter hour.
    firing.tick(first + dt.timedelta(seconds=3))
    after = subscription(pipeline, "cron", "quarter").next_fire_at
    assert after == first + dt.timedelta(minutes=15)
    scheduled = {v["key"]: v["value"] for v in runs_of(pipeline)[0].variables}
    assert scheduled == {"GOFER_EXTENSION_CRON_SCHEDULED_TIME": first.isoformat()}
