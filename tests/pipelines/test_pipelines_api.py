"""Pipeline metadata: list, get, enable/disable and delete."""

from __future__ import annotations

import pytest

from events.models import Event
from pipelines import services as pipelines
from pipelines.models import Namespace, Pipeline
from tests.conftest import simple_config

PIPELINE_KEYS = {"namespace_id", "pipeline_id", "state", "created", "modified"}
BUILD = "/api/namespaces/team-a/pipelines/build"


@pytest.fixture
def registered(namespaces):
    team_a = Namespace.objects.get(id="team-a")
    for slug in ("build", "lint"):
        pipelines.register_config(team_a, slug, simple_config(slug))
    pipelines.register_config(Namespace.objects.get(id="team-b"), "other", simple_config("other"))


def test_list_pipelines(registered, alice):
    response = alice.get("/api/namespaces/team-a/pipelines")
    assert response.status_code == 200
    listed = response.json()["pipelines"]
    assert [p["pipeline_id"] for p in listed] == ["build", "lint"]
    assert all(set(p) == PIPELINE_KEYS for p in listed)
    assert all(p["namespace_id"] == "team-a" and p["state"] == "active" for p in listed)
    assert all(p["created"] > 0 and p["modified"] >= p["created"] for p in listed)


def test_an_empty_namespace_lists_no_pipelines(namespaces, admin):
    pipelines.create_namespace("empty-ns", "Empty", "")
    assert admin.get("/api/namespaces/empty-ns/pipelines").json() == {"pipelines": []}


def test_outsider_gets_404_on_the_pipeline_list(registered, charlie):
    response = charlie.get("/api/namespaces/team-a/pipelines")
    assert response.status_code == 404
    assert response.json()["message"] == "namespace team-a not found"


def test_get_a_pipeline(registered, bob):
    response = bob.get(BUILD)
    assert response.status_code == 200
    pipeline = response.json()["pipeline"]
    assert set(pipeline) == PIPELINE_KEYS
    assert (pipeline["namespace_id"], pipeline["pipeline_id"], pipeline["state"]) == ("team-a", "build", "active")


def test_a_missing_pipeline_is_404_naming_it(registered, alice):
    response = alice.get("/api/namespaces/team-a/pipelines/nothing")
    assert response.status_code == 404
    assert response.json()["message"] == "pipeline nothing not found"
    assert response.json()["errors"][0]["field"] == "pipeline_id"


def test_a_pipeline_in_a_missing_namespace_is_404_naming_the_namespace(admin):
    response = admin.get("/api/namespaces/nowhere/pipelines/build")
    assert response.status_code == 404
    assert response.json()["message"] == "namespace nowhere not found"
    assert response.json()["errors"][0]["field"] == "namespace_id"


def test_a_pipeline_of_another_namespace_is_not_found_through_this_one(registered, admin):
    assert admin.get("/api/namespaces/team-a/pipelines/other").status_code == 404


def test_disable_and_enable_a_pipeline(registered, alice):
    response = alice.patch(BUILD, {"state": "disabled"})
    assert response.status_code == 204
    assert alice.get(BUILD).json()["pipeline"]["state"] == "disabled"
    event = Event.objects.get(kind="disabled_pipeline")
    assert event.details == {"namespace_id": "team-a", "pipeline_id": "build"}
    assert (event.namespace_id, event.pipeline_slug) == ("team-a", "build")

    assert alice.patch(BUILD, {"state": "active"}).status_code == 204
    assert Pipeline.objects.get(namespace_id="team-a", slug="build").state == "active"
    assert Event.objects.filter(kind="enabled_pipeline", pipeline_slug="build").count() == 1


def test_disabling_a_disabled_pipeline_is_204_with_a_header_saying_nothing_changed(registered, alice):
    first = alice.patch(BUILD, {"state": "disabled"})
    assert (first.status_code, first.get("Gofer-Changed")) == (204, None)
    response = alice.patch(BUILD, {"state": "disabled"})
    assert response.status_code == 204
    assert response["Gofer-Changed"] == "false"
    assert response.content == b""
    assert Event.objects.filter(kind="disabled_pipeline").count() == 1


def test_an_empty_patch_is_204_with_a_header_saying_nothing_changed(registered, alice):
    response = alice.patch(BUILD, {})
    assert response.status_code == 204
    assert response["Gofer-Changed"] == "false"


@pytest.mark.parametrize("state", ["paused", "unknown", "", None, 1, ["active"]])
def test_an_invalid_state_is_400(registered, alice, state):
    response = alice.patch(BUILD, {"state": state})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "state"
    assert response.json()["message"] == "state: must be active or disabled"


def test_read_only_member_cannot_change_a_pipeline(registered, bob):
    assert bob.patch(BUILD, {"state": "disabled"}).status_code == 403
    assert bob.delete(BUILD).status_code == 403
    assert Pipeline.objects.get(namespace_id="team-a", slug="build").state == "active"


def test_outsider_gets_404_on_pipeline_changes(registered, charlie):
    assert charlie.patch(BUILD, {"state": "disabled"}).status_code == 404
    assert charlie.delete(BUILD).status_code == 404
    assert Pipeline.objects.filter(namespace_id="team-a", slug="build").exists()


def test_delete_a_pipeline(registered, alice):
    assert alice.delete(BUILD).status_code == 204
    assert alice.get(BUILD).status_code == 404
    assert [p["pipeline_id"] for p in alice.get("/api/namespaces/team-a/pipelines").json()["pipelines"]] == ["lint"]
    event = Event.objects.get(kind="deleted_pipeline")
    assert event.details == {"namespace_id": "team-a", "pipeline_id": "build"}


def test_registering_again_after_delete_starts_from_version_1(registered, alice):
    alice.delete(BUILD)
    response = alice.post(f"{BUILD}/configs", {"config": simple_config()})
    assert response.status_code == 201
    assert response.json()["pipeline"]["config"]["version"] == 1


def test_a_pipeline_differing_only_in_case_from_another_is_409_naming_pipeline_id(admin, namespaces):
    """Issue 8, finding 19, for pipelines: ``build`` and ``Build`` would share a log and object directory."""
    assert admin.post("/api/namespaces/team-a/pipelines/build/configs", {"config": simple_config()}).status_code == 201
    response = admin.post("/api/namespaces/team-a/pipelines/Build/configs", {"config": simple_config("Build")})
    assert response.status_code == 409, response.json()
    assert response.json()["errors"][0]["field"] == "pipeline_id"
    assert "build" in response.json()["message"]
    assert list(Pipeline.objects.filter(namespace_id="team-a").values_list("slug", flat=True)) == ["build"]
    # Another namespace may have its own Build.
    assert (
        admin.post("/api/namespaces/team-b/pipelines/Build/configs", {"config": simple_config("Build")}).status_code
        == 201
    )
