"""Deploying a config version (POST configs/{version}) and the deployment records it leaves."""

from __future__ import annotations

import pytest

from events.models import Event
from pipelines.models import Deployment, Pipeline
from tests.conftest import simple_config

BUILD = "/api/namespaces/team-a/pipelines/build"
DEPLOYMENT_KEYS = {
    "namespace_id",
    "pipeline_id",
    "deployment_id",
    "start_version",
    "end_version",
    "started",
    "ended",
    "state",
    "status",
    "status_reason",
    "logs",
}


@pytest.fixture
def two_versions(alice):
    for _ in range(2):
        assert alice.post(f"{BUILD}/configs", {"config": simple_config()}).status_code == 201
    return Pipeline.objects.get(namespace_id="team-a", slug="build")


def config_of(caller, version):
    return caller.get(f"{BUILD}/configs/{version}").json()["config"]


def test_deploying_version_1_makes_it_live(two_versions, alice):
    response = alice.post(f"{BUILD}/configs/1")
    assert response.status_code == 201
    deployment = response.json()["deployment"]
    assert set(deployment) == DEPLOYMENT_KEYS
    assert (deployment["deployment_id"], deployment["start_version"], deployment["end_version"]) == (1, 1, 1)
    assert (deployment["state"], deployment["status"], deployment["status_reason"]) == ("Complete", "Successful", None)
    assert deployment["ended"] >= deployment["started"] > 0
    assert config_of(alice, 1)["state"] == "live"
    assert config_of(alice, 2)["state"] == "unreleased"


def test_deploying_v1_then_v2_deprecates_v1(two_versions, alice):
    alice.post(f"{BUILD}/configs/1")
    response = alice.post(f"{BUILD}/configs/2")
    assert response.status_code == 201
    assert (response.json()["deployment"]["start_version"], response.json()["deployment"]["end_version"]) == (1, 2)
    v1, v2 = config_of(alice, 1), config_of(alice, 2)
    assert v1["state"] == "deprecated"
    assert v1["deprecated"] >= v2["registered"]
    assert v2["state"] == "live"
    assert v2["deprecated"] == 0

    deployments = alice.get(f"{BUILD}/deployments").json()["deployments"]
    assert [d["deployment_id"] for d in deployments] == [1, 2]
    assert all((d["state"], d["status"]) == ("Complete", "Successful") for d in deployments)
    for deployment in deployments:
        kinds = [next(iter(log["kind"])) for log in deployment["logs"]]
        assert kinds == ["started_deployment", "completed_deployment"]
        assert all(set(log) == {"id", "kind", "emitted"} for log in deployment["logs"])
    assert deployments[1]["logs"][0]["kind"]["started_deployment"] == {
        "namespace_id": "team-a",
        "pipeline_id": "build",
        "start_version": 1,
        "end_version": 2,
    }


def test_deploying_the_live_version_again_is_201_saying_nothing_changed(two_versions, alice):
    first = alice.post(f"{BUILD}/configs/1")
    assert (first.status_code, first.get("Gofer-Changed")) == (201, None)
    assert "changed" not in first.json()
    response = alice.post(f"{BUILD}/configs/1")
    assert response.status_code == 201
    assert response["Gofer-Changed"] == "false"
    body = response.json()
    assert body["changed"] is False
    assert "version 1 is already live" in body["message"]
    assert body["deployment"]["deployment_id"] == 1
    assert Deployment.objects.filter(pipeline=two_versions).count() == 1
    assert Event.objects.filter(kind="started_deployment").count() == 1


def test_rolling_back_to_an_older_version_is_a_new_deployment(two_versions, alice):
    alice.post(f"{BUILD}/configs/1")
    alice.post(f"{BUILD}/configs/2")
    response = alice.post(f"{BUILD}/configs/1")
    assert response.status_code == 201
    assert response.json()["deployment"]["deployment_id"] == 3
    v1, v2 = config_of(alice, 1), config_of(alice, 2)
    assert (v1["state"], v1["deprecated"]) == ("live", 0)
    assert v2["state"] == "deprecated"
    assert v2["deprecated"] > 0


def test_deploying_version_0_deploys_the_latest(two_versions, alice):
    response = alice.post(f"{BUILD}/configs/0")
    assert response.status_code == 201
    assert response.json()["deployment"]["end_version"] == 2


def test_a_deployment_in_progress_makes_another_409(two_versions, alice):
    Deployment.objects.create(
        namespace_id="team-a", pipeline=two_versions, number=9, start_version=1, end_version=1, state="Running"
    )
    response = alice.post(f"{BUILD}/configs/2")
    assert response.status_code == 409
    assert response.json()["error_code"] == "conflict"
    assert config_of(alice, 2)["state"] == "unreleased"


@pytest.mark.parametrize(("version", "status"), [("9", 404), ("abc", 400), ("-2", 400)])
def test_deploying_a_bad_or_missing_version(two_versions, alice, version, status):
    response = alice.post(f"{BUILD}/configs/{version}")
    assert response.status_code == status
    assert response.json()["errors"][0]["field"] == "version"
    assert not Deployment.objects.exists()


def test_read_only_member_cannot_deploy(two_versions, bob):
    assert bob.post(f"{BUILD}/configs/1").status_code == 403
    assert not Deployment.objects.exists()


def test_deploying_needs_the_deployments_permission(two_versions, namespaces):
    from access import services as access
    from tests.conftest import make_caller

    access.create_role(
        "configs-only",
        "",
        [{"resources": ["namespaces:^team-a$", "pipelines:.*", "configs"], "actions": ["write", "read"]}],
    )
    response = make_caller("c", ["configs-only"]).post(f"{BUILD}/configs/1")
    assert response.status_code == 403
    assert "deployments" in response.json()["message"]


def test_get_a_deployment(two_versions, bob, alice):
    alice.post(f"{BUILD}/configs/1")
    response = bob.get(f"{BUILD}/deployments/1")
    assert response.status_code == 200
    deployment = response.json()["deployment"]
    assert set(deployment) == DEPLOYMENT_KEYS
    assert (deployment["namespace_id"], deployment["pipeline_id"]) == ("team-a", "build")


@pytest.mark.parametrize(
    ("deployment_id", "status"), [("abc", 400), ("0", 400), ("-1", 400), ("1_0", 400), ("%201", 400), ("7", 404)]
)
def test_get_a_bad_or_missing_deployment(two_versions, alice, deployment_id, status):
    alice.post(f"{BUILD}/configs/1")
    response = alice.get(f"{BUILD}/deployments/{deployment_id}")
    assert response.status_code == status
    assert response.json()["errors"][0]["field"] == "deployment_id"


def test_deployments_of_a_pipeline_without_any_is_empty(two_versions, alice):
    assert alice.get(f"{BUILD}/deployments").json() == {"deployments": []}


def test_outsider_gets_404_on_deployments(two_versions, charlie):
    assert charlie.get(f"{BUILD}/deployments").status_code == 404
    assert charlie.post(f"{BUILD}/configs/1").status_code == 404
