"""Extension and subscription commands against the live server (the triggers app's routes), with its built-in
interval, cron and webhook triggers: what the stand-in tests check for shapes, checked here for behaviour."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Gofer, counting_pipeline
from tests.conftest import make_caller

pytestmark = [pytest.mark.slow]

REGISTRATION_FIELDS = {"extension_id", "image", "settings", "status", "additional_roles", "created", "modified"}
SUBSCRIPTION_FIELDS = {
    "namespace_id",
    "pipeline_id",
    "extension_id",
    "subscription_id",
    "settings",
    "status",
    "status_reason",
}


def test_extension_list_shows_the_built_in_triggers_with_their_documentation(gofer: Gofer):
    listed = gofer.json("extension", "list")["extensions"]
    ids = {e["registration"]["extension_id"] for e in listed}
    assert {"interval", "cron", "webhook"} <= ids
    assert all(set(e["registration"]) >= REGISTRATION_FIELDS for e in listed)
    shown = gofer("extension", "get", "interval")
    assert "every" in shown.stdout  # the documented subscription parameter
    assert gofer.json("extension", "get", "cron")["extension"]["state"] == "running"


def test_disabling_an_extension_is_reported_once_and_enabling_restores_it(gofer: Gofer):
    assert gofer.json("extension", "disable", "cron")["changed"] is True
    assert gofer.json("extension", "get", "cron")["extension"]["registration"]["status"] == "disabled"
    assert gofer.json("extension", "disable", "cron")["changed"] is False
    assert gofer.json("extension", "enable", "cron")["changed"] is True
    assert gofer.json("extension", "get", "cron")["extension"]["registration"]["status"] == "enabled"


def test_a_subscription_made_with_the_cli_is_listed_shown_and_removed_on_the_server(gofer: Gofer):
    counting_pipeline("count")
    created = gofer.json("pipeline", "subscribe", "count", "interval", "every-5m", "-s", "every=5m")
    assert set(created["subscription"]) >= SUBSCRIPTION_FIELDS  # v0's fields, and our created/modified/firings
    assert created["subscription"]["settings"] == {"every": "5m"}
    assert created["subscription"]["status"] == "active"

    listed = gofer.json("pipeline", "subscription", "list", "count")["subscriptions"]
    assert [(s["extension_id"], s["subscription_id"]) for s in listed] == [("interval", "every-5m")]
    shown = gofer.json("pipeline", "subscription", "get", "count", "interval", "every-5m")["subscription"]
    assert shown["pipeline_id"] == "count"
    assert "every-5m" in gofer("pipeline", "subscription", "list", "count").stdout

    assert gofer.json("pipeline", "unsubscribe", "count", "interval", "every-5m")["changed"] is True
    assert gofer.json("pipeline", "subscription", "list", "count")["subscriptions"] == []
    gone = gofer("pipeline", "subscription", "get", "count", "interval", "every-5m", expect=3)
    assert "not_found" in gone.stderr


def test_a_bad_subscription_setting_exits_2_naming_the_setting_and_creates_nothing(gofer: Gofer):
    counting_pipeline("count")
    refused = gofer("pipeline", "subscribe", "count", "interval", "fast", "-s", "every=soon", expect=2)
    assert "settings.every" in refused.stderr
    missing = gofer("pipeline", "subscribe", "count", "interval", "bare", expect=2)
    assert "settings.every" in missing.stderr
    assert gofer.json("pipeline", "subscription", "list", "count")["subscriptions"] == []
    unknown = gofer("pipeline", "subscribe", "count", "no-such-extension", "xyz", expect=3)
    assert "not_found" in unknown.stderr


def test_a_user_token_cannot_install_or_disable_extensions_and_exits_4(gofer: Gofer):
    user = make_caller("user@example.com", ["user"])
    as_user = Gofer(gofer.url, gofer.home, user.token)
    denied = as_user("extension", "disable", "cron", expect=4)
    assert "permission_denied" in denied.stderr
    as_user("extension", "install", "mine", "example.com/ext:1", expect=4)
    assert gofer.json("extension", "get", "cron")["extension"]["registration"]["status"] == "enabled"
    assert "mine" not in {e["registration"]["extension_id"] for e in gofer.json("extension", "list")["extensions"]}
