"""Anonymous callers: read the default namespace's pipelines and runs, nothing else; off with GOFER_ALLOW_ANONYMOUS."""

from __future__ import annotations

import pytest

from tests.conftest import deployed_pipeline

DEFAULT = "/api/namespaces/default"


@pytest.fixture
def hello(db):
    return deployed_pipeline("default", "hello")


@pytest.mark.parametrize(
    "path", [DEFAULT, f"{DEFAULT}/pipelines", f"{DEFAULT}/pipelines/hello", f"{DEFAULT}/pipelines/hello/runs"]
)
def test_anonymous_reads_the_default_namespace(hello, anonymous, path):
    assert anonymous.get(path).status_code == 200


def test_anonymous_reads_a_run_in_default(hello, admin, anonymous):
    admin.post(f"{DEFAULT}/pipelines/hello/runs", {})
    response = anonymous.get(f"{DEFAULT}/pipelines/hello/runs/1")
    assert response.status_code == 200
    assert response.json()["run"]["run_id"] == 1


@pytest.mark.parametrize(
    "path",
    [f"{DEFAULT}/pipelines/hello/configs", f"{DEFAULT}/pipelines/hello/deployments", "/api/namespaces", "/api/events"],
)
def test_anonymous_gets_401_on_routes_that_do_not_allow_it(hello, anonymous, path):
    response = anonymous.get(path)
    assert response.status_code == 401


def test_anonymous_cannot_change_anything_in_default(hello, anonymous):
    assert anonymous.post(f"{DEFAULT}/pipelines/hello/runs", {}).status_code == 401
    assert anonymous.patch(f"{DEFAULT}/pipelines/hello", {"state": "disabled"}).status_code == 401
    assert anonymous.delete(f"{DEFAULT}/pipelines/hello").status_code == 401
    assert hello.runs.count() == 0


def test_anonymous_sees_nothing_outside_default(namespaces, anonymous):
    deployed_pipeline("team-a")
    response = anonymous.get("/api/namespaces/team-a/pipelines")
    assert response.status_code == 404
    assert response.json()["message"] == "namespace team-a not found"


def test_anonymous_access_can_be_turned_off(hello, anonymous, settings):
    settings.GOFER_ALLOW_ANONYMOUS = False
    response = anonymous.get(f"{DEFAULT}/pipelines")
    assert response.status_code == 401
    assert anonymous.get("/api/system/metadata").status_code == 200
