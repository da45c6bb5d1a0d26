"""The extension paths of Gofer v0: list, get, install (and install again), enable and disable, uninstall, debug,
an extension's subscriptions; Gofer's shapes, admin-only changes, sensitive settings never echoed."""

from __future__ import annotations

import json

from django.db import connection

from events.models import Event
from tests.conftest import make_caller
from tests.triggers.conftest import GITHUB_SECRET, SUBSCRIPTIONS
from triggers.models import Extension, Subscription


def test_a_tenant_without_the_extensions_permission_cannot_list_them_but_subscribes_all_the_same(
    builtins, pipeline, alice
):
    assert alice.get("/api/extensions").status_code == 403
    response = alice.post(
        SUBSCRIPTIONS, {"extension_id": "cron", "subscription_id": "nightly", "settings": {"expression": "0 3 * * *"}}
    )
    assert response.status_code == 201


def test_an_admin_sees_every_extension_in_gofers_shape(builtins, admin):
    extensions = {e["registration"]["extension_id"]: e for e in admin.get("/api/extensions").json()["extensions"]}
    # The notifier kinds (issue 11) are built-ins too, seeded by the default GOFER_BUILTIN_EXTENSIONS at migrate.
    assert set(extensions) == {
        "interval",
        "cron",
        "webhook",
        "github",
        "notify-webhook",
        "notify-slack",
        "notify-github",
        "notify-email",
    }
    interval = extensions["interval"]
    assert interval["state"] == "running" and interval["kind"] == "trigger"
    assert interval["registration"]["image"] == "builtin:interval"
    assert interval["registration"]["status"] == "enabled"
    assert {"key": "min_duration", "value": "1s", "source": "system"} in interval["registration"]["settings"]
    params = interval["documentation"]["pipeline_subscription_params"]
    assert params == [
        {"key": "every", "required": True, "documentation": params[0]["documentation"], "sensitive": False}
    ]
    assert set(interval) >= {"documentation", "registration", "started", "state", "url"}


def test_sensitive_install_settings_are_redacted_and_encrypted_at_rest(builtins, admin):
    github = admin.get("/api/extensions/github").json()["extension"]
    assert {"key": "app_webhook_secret", "value": "[redacted]", "source": "system"} in github["registration"][
        "settings"
    ]
    assert GITHUB_SECRET not in json.dumps(admin.get("/api/extensions").json())
    with connection.cursor() as cursor:
        cursor.execute("SELECT settings FROM triggers_extension WHERE id = 'github'")
        stored = cursor.fetchone()[0]
    assert stored.startswith("gofer:v1:") and GITHUB_SECRET not in stored


def test_sensitive_subscription_settings_are_never_echoed(builtins, pipeline, alice):
    alice.post(
        SUBSCRIPTIONS, {"extension_id": "webhook", "subscription_id": "hook", "settings": {"secret": "plain-secret"}}
    )
    shown = alice.get(f"{SUBSCRIPTIONS}/webhook/hook").json()["subscription"]
    assert shown["settings"] == {"secret": "[redacted]"}
    everything = json.dumps([alice.get(SUBSCRIPTIONS).json(), list(Event.objects.values("details"))])
    assert "plain-secret" not in everything
    with connection.cursor() as cursor:
        cursor.execute("SELECT settings FROM triggers_subscription")
        assert "plain-secret" not in cursor.fetchone()[0]


def test_installing_is_admin_only_and_an_existing_id_is_a_409_unless_forced(builtins, admin, alice):
    body = {"id": "interval", "image": "builtin:interval", "settings": {"min_duration": "30s"}}
    assert alice.post("/api/extensions", body).status_code == 403
    assert admin.post("/api/extensions", body).status_code == 409
    forced = admin.post("/api/extensions?force=true", body)
    assert forced.status_code == 201
    assert {"key": "min_duration", "value": "30s", "source": "system"} in forced.json()["extension"]["registration"][
        "settings"
    ]


def test_install_settings_are_validated_naming_the_key(builtins, admin):
    unknown = admin.post(
        "/api/extensions?force=true", {"id": "interval", "image": "builtin:interval", "settings": {"speed": "1"}}
    )
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["field"] == "settings.speed"
    missing = admin.post("/api/extensions?force=true", {"id": "github", "image": "builtin:github", "settings": {}})
    assert missing.status_code == 400 and missing.json()["errors"][0]["field"] == "settings.app_webhook_secret"
    wrong_id = admin.post("/api/extensions", {"id": "my-cron", "image": "builtin:cron", "settings": {}})
    assert wrong_id.status_code == 400 and wrong_id.json()["errors"][0]["field"] == "id"


def test_disabling_an_extension_says_so_and_an_unknown_one_is_a_404(builtins, admin):
    assert admin.patch("/api/extensions/cron", {"enable": False}).status_code == 204
    again = admin.patch("/api/extensions/cron", {"enable": False})
    assert again.status_code == 204 and again.headers["Gofer-Changed"] == "false"
    assert admin.get("/api/extensions/cron").json()["extension"]["registration"]["status"] == "disabled"
    assert admin.get("/api/extensions/nope").status_code == 404
    assert admin.patch("/api/extensions/nope", {"enable": True}).status_code == 404
    kinds = list(Event.objects.filter(kind__endswith="_extension").values_list("kind", flat=True))
    assert "disabled_extension" in kinds


def test_uninstalling_removes_the_subscriptions_and_sticks_across_restarts(builtins, pipeline, admin, alice):
    alice.post(
        SUBSCRIPTIONS, {"extension_id": "cron", "subscription_id": "nightly", "settings": {"expression": "0 3 * * *"}}
    )
    assert admin.delete("/api/extensions/cron").status_code == 204
    assert not Subscription.objects.exists()
    assert not Extension.objects.filter(id="cron").exists()
    builtins.ensure_builtin_extensions()  # what a restart does: the operator's uninstall sticks
    assert not Extension.objects.filter(id="cron").exists()
    kinds = list(Event.objects.values_list("kind", flat=True))
    assert "pipeline_extension_subscription_unregistered" in kinds and "uninstalled_extension" in kinds


def test_an_extensions_subscriptions_are_listed_scoped_to_the_caller(builtins, pipeline, admin, alice, charlie):
    from tests.conftest import deployed_pipeline

    other = deployed_pipeline("team-b")
    alice.post(
        SUBSCRIPTIONS, {"extension_id": "cron", "subscription_id": "nightly", "settings": {"expression": "0 3 * * *"}}
    )
    charlie.post(
        "/api/namespaces/team-b/pipelines/build/subscriptions",
        {"extension_id": "cron", "subscription_id": "hourly", "settings": {"expression": "@hourly"}},
    )
    assert other is not None
    every = admin.get("/api/extensions/cron/subscriptions").json()["subscriptions"]
    assert {(s["namespace_id"], s["subscription_id"]) for s in every} == {("team-a", "nightly"), ("team-b", "hourly")}
    from access import services as access

    access.create_role(
        "team-a-cron",
        "team-a's subscriptions and the cron extension",
        [
            {
                "resources": ["extensions:^cron$", "subscriptions", "namespaces:^team-a$", "pipelines:.*"],
                "actions": ["read"],
            },
        ],
    )
    reader = make_caller("reader", ["team-a-cron"])
    mine = reader.get("/api/extensions/cron/subscriptions").json()["subscriptions"]
    assert [s["subscription_id"] for s in mine] == ["nightly"]
    assert reader.get("/api/extensions/interval/subscriptions").status_code == 403


def test_debug_of_a_built_in_summarises_it(builtins, pipeline, admin, alice):
    alice.post(SUBSCRIPTIONS, {"extension_id": "interval", "subscription_id": "often", "settings": {"every": "1m"}})
    info = json.loads(admin.get("/api/extensions/interval/debug").json()["info"])
    assert info["subscriptions"]["active"] == 1 and info["next_firing"]
