"""Regex targets on namespaces and pipelines, Gofer's own example first."""

from __future__ import annotations

import pytest

from access import services as access
from pipelines import services as pipelines
from pipelines.models import Namespace
from tests.conftest import make_caller, simple_config


@pytest.fixture
def devops(admin):
    """Gofer's checklist example: a role limited to namespaces matching ^devops.*"""
    for ns in ("devops-x", "devops-y"):
        pipelines.create_namespace(ns, ns, "")
        pipelines.register_config(Namespace.objects.get(id=ns), "deploy", simple_config("deploy"))
    pipelines.register_config(Namespace.objects.get(id="default"), "hello", simple_config("hello"))
    access.create_role(
        "devops", "devops teams", [{"resources": ["namespaces:^devops.*", "pipelines:.*"], "actions": ["read"]}]
    )
    return make_caller("devops-bot", ["devops"])


def test_a_devops_role_lists_pipelines_in_devops_x(devops):
    response = devops.get("/api/namespaces/devops-x/pipelines")
    assert response.status_code == 200
    assert [p["pipeline_id"] for p in response.json()["pipelines"]] == ["deploy"]


def test_a_devops_role_is_refused_in_default(devops):
    response = devops.get("/api/namespaces/default/pipelines")
    assert response.status_code == 404
    assert response.json()["message"] == "namespace default not found"


def test_a_devops_role_lists_only_devops_namespaces(devops):
    response = devops.get("/api/namespaces")
    assert [n["id"] for n in response.json()["namespaces"]] == ["devops-x", "devops-y"]


def test_targets_use_search_semantics_so_anchors_matter(admin):
    pipelines.create_namespace("not-devops", "x", "")
    access.create_role("loose", "", [{"resources": ["namespaces:devops", "pipelines:.*"], "actions": ["read"]}])
    loose = make_caller("loose", ["loose"])
    assert loose.get("/api/namespaces/not-devops/pipelines").status_code == 200


def test_a_pipeline_target_limits_pipelines_within_a_namespace(namespaces):
    team_a = Namespace.objects.get(id="team-a")
    for slug in ("web-app", "web-api", "batch"):
        pipelines.register_config(team_a, slug, simple_config(slug))
    access.create_role(
        "web", "", [{"resources": ["namespaces:^team-a$", "pipelines:^web-", "configs"], "actions": ["read"]}]
    )
    web = make_caller("web", ["web"])
    listed = web.get("/api/namespaces/team-a/pipelines").json()["pipelines"]
    assert [p["pipeline_id"] for p in listed] == ["web-api", "web-app"]
    assert web.get("/api/namespaces/team-a/pipelines/web-app/configs").status_code == 200
    refused = web.get("/api/namespaces/team-a/pipelines/batch/configs")
    assert refused.status_code == 404
    assert refused.json()["message"] == "pipeline batch not found"


def test_one_role_must_grant_every_resource(namespaces):
    """Two roles that together would cover a route do not add up: one role must hold all of it."""
    access.create_role("ns-only", "", [{"resources": ["namespaces:^team-a$", "pipelines:.*"], "actions": ["read"]}])
    access.create_role("runs-only", "", [{"resources": ["runs"], "actions": ["read"]}])
    pipelines.register_config(Namespace.objects.get(id="team-a"), "build", simple_config())
    split = make_caller("split", ["ns-only", "runs-only"])
    response = split.get("/api/namespaces/team-a/pipelines/build/runs")
    assert response.status_code == 403
    assert "runs" in response.json()["message"]


def test_a_permission_without_the_action_is_403_naming_it(bob, namespaces):
    pipelines.register_config(Namespace.objects.get(id="team-a"), "build", simple_config())
    response = bob.patch("/api/namespaces/team-a/pipelines/build", {"state": "disabled"})
    assert response.status_code == 403
    assert response.json()["message"] == "this token lacks permission write on namespaces:team-a, pipelines:build"
