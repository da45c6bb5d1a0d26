"""System preferences (admin), the run kill switch, and the public metadata route."""

from __future__ import annotations

from django.conf import settings

from access.models import SystemPreferences
from events.models import Event

BUILD_RUNS = "/api/namespaces/team-a/pipelines/build/runs"


def test_admin_reads_system_preferences(admin):
    response = admin.get("/api/system")
    assert response.status_code == 200
    assert response.json() == {"bootstrap_token_created": False, "ignore_pipeline_run_events": False}


def test_system_preferences_are_admin_only(alice, user, anonymous):
    assert alice.get("/api/system").status_code == 403
    assert user.patch("/api/system", {"ignore_pipeline_run_events": True}).status_code == 403
    assert anonymous.get("/api/system").status_code == 401
    assert SystemPreferences.load().ignore_pipeline_run_events is False


def test_admin_turns_on_the_kill_switch(admin):
    response = admin.patch("/api/system", {"ignore_pipeline_run_events": True})
    assert response.status_code == 200
    assert response.json() == {"bootstrap_token_created": False, "ignore_pipeline_run_events": True}
    assert SystemPreferences.load().ignore_pipeline_run_events is True
    event = Event.objects.get(kind="updated_system_preferences")
    assert event.details == {"ignore_pipeline_run_events": True}


def test_a_no_op_patch_says_changed_false(admin):
    response = admin.patch("/api/system", {"ignore_pipeline_run_events": False})
    assert response.status_code == 200
    assert response["Gofer-Changed"] == "false"
    body = response.json()
    assert body["changed"] is False
    assert body["ignore_pipeline_run_events"] is False
    assert body["message"]
    assert not Event.objects.filter(kind="updated_system_preferences").exists()


def test_an_empty_patch_says_changed_false(admin):
    response = admin.patch("/api/system", {})
    assert response.status_code == 200
    assert response["Gofer-Changed"] == "false"
    assert response.json()["changed"] is False


def test_patch_with_a_non_boolean_is_400(admin):
    response = admin.patch("/api/system", {"ignore_pipeline_run_events": "yes"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "ignore_pipeline_run_events"


def test_bootstrap_token_created_cannot_be_patched(admin):
    response = admin.patch("/api/system", {"bootstrap_token_created": True})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "bootstrap_token_created"


def test_the_run_kill_switch_refuses_new_runs_with_503(admin, team_a_pipeline):
    admin.patch("/api/system", {"ignore_pipeline_run_events": True})
    response = admin.post(BUILD_RUNS, {"variables": {}})
    assert response.status_code == 503
    assert response.json()["error_code"] == "unavailable"
    assert "ignore_pipeline_run_events" in response.json()["message"]
    assert not team_a_pipeline.runs.exists()

    admin.patch("/api/system", {"ignore_pipeline_run_events": False})
    assert admin.post(BUILD_RUNS, {"variables": {}}).status_code == 201


def test_system_metadata_is_public(anonymous):
    response = anonymous.get("/api/system/metadata")
    assert response.status_code == 200
    assert response.json() == {"semver": settings.GOFER_SEMVER, "commit": settings.GOFER_COMMIT}
    assert response.json()["semver"] == "0.9.1"
