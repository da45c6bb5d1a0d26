"""Run tokens (a task's GOFER_TOKEN): least privilege, as the audit of issue 8 (finding 2) tried them.

A run token may read and write its own run's objects, read its pipeline's objects and read its own run; nothing
else, unless the pipeline's config grants more with ``run_token_grants``. Its end with the run is tested with the
engine (tests/runs/test_run_tokens.py).
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from access import services as access
from kernel.rbac import SYSTEM_PRINCIPAL
from objectstore import services as objects
from pipelines import services as pipelines
from pipelines.models import Pipeline
from runs import services as runs
from runs.models import Run
from tests.conftest import ApiCaller, deployed_pipeline, make_caller, simple_config

BUILD = "/api/namespaces/team-a/pipelines/build"


def raw_post(caller: ApiCaller, path: str, data: bytes):
    return caller.client.generic("POST", path, data, content_type="application/octet-stream", **caller._headers(None))


def run_token_of(run: Run) -> ApiCaller:
    """The run's token, minted as admission mints it."""
    secret, token = access.mint_run_token(run)
    Run.objects.filter(pk=run.pk).update(token=token, token_secret=secret)
    return ApiCaller(APIClient(), secret, str(token.id), token.user)


@pytest.fixture
def pipeline(namespaces):
    return deployed_pipeline(
        "team-a", config=simple_config(tasks=[{"id": "t", "image": "busybox", "inject_api_token": True}])
    )


@pytest.fixture
def runs_of_build(pipeline):
    """Runs 1 and 2 of team-a/build; the token is run 2's."""
    first = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    second = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    return first, second


@pytest.fixture
def token(runs_of_build) -> ApiCaller:
    return run_token_of(runs_of_build[1])


def test_a_run_token_cannot_disable_or_delete_its_own_pipeline(token, pipeline):
    disabled = token.patch(BUILD, {"state": "disabled"})
    assert disabled.status_code == 403, disabled.json()
    deleted = token.delete(BUILD)
    assert deleted.status_code == 403, deleted.json()
    assert Pipeline.objects.get(pk=pipeline.pk).state == "active"


def test_a_run_token_cannot_register_or_deploy_configs_nor_start_or_cancel_runs(token, pipeline):
    registered = token.post(f"{BUILD}/configs", {"config": simple_config()})
    assert registered.status_code == 403, registered.json()
    assert token.post(f"{BUILD}/configs/1").status_code == 403
    started = token.post(f"{BUILD}/runs", {"variables": {}})
    assert started.status_code == 403, started.json()
    assert Run.objects.filter(pipeline=pipeline).count() == 2
    assert token.delete(f"{BUILD}/runs/2").status_code == 403


def test_a_run_token_reads_its_own_run_and_its_timeline(token):
    response = token.get(f"{BUILD}/runs/2")
    assert response.status_code == 200
    assert response.json()["run"]["run_id"] == 2
    assert token.get(f"{BUILD}/runs/2/timeline").status_code == 200


def test_a_run_token_sees_no_other_run_of_its_pipeline(token):
    for path in (f"{BUILD}/runs/1", f"{BUILD}/runs/1/timeline", f"{BUILD}/runs/1/objects", f"{BUILD}/runs/1/objects/k"):
        response = token.get(path)
        assert response.status_code == 404, (path, response.json())
        assert response.json()["errors"][0]["field"] == "run_id"
    assert raw_post(token, f"{BUILD}/runs/1/objects/k", b"x").status_code == 404
    listed = token.get(f"{BUILD}/runs")
    assert listed.status_code == 403, listed.json()


def test_a_run_token_reads_writes_and_deletes_its_own_runs_objects(token):
    assert raw_post(token, f"{BUILD}/runs/2/objects/artifact", b"built").status_code == 201
    assert [o["key"] for o in token.get(f"{BUILD}/runs/2/objects").json()["objects"]] == ["artifact"]
    assert b"".join(token.get(f"{BUILD}/runs/2/objects/artifact").streaming_content) == b"built"
    assert token.delete(f"{BUILD}/runs/2/objects/artifact").status_code == 204


def test_a_run_token_reads_but_never_writes_its_pipelines_objects(token, pipeline):
    objects.put_pipeline_object(pipeline, "settings", [b"shared"])
    assert [o["key"] for o in token.get(f"{BUILD}/objects").json()["objects"]] == ["settings"]
    assert b"".join(token.get(f"{BUILD}/objects/settings").streaming_content) == b"shared"
    assert raw_post(token, f"{BUILD}/objects/planted", b"x").status_code == 403
    assert token.delete(f"{BUILD}/objects/settings").status_code == 403


def test_a_run_token_reads_nothing_else_of_its_pipeline(token):
    for path in ("configs", "deployments", "runs/2/tasks", "secrets"):
        response = token.get(f"{BUILD}/{path}")
        assert response.status_code == 403, (path, response.json())
    assert token.get("/api/events").status_code == 403


def test_a_run_token_sees_nothing_of_other_pipelines_or_namespaces(token, namespaces):
    deployed_pipeline("team-a", "elsewhere")
    assert token.get("/api/namespaces/team-a/pipelines/elsewhere/objects").status_code == 404
    assert token.get("/api/namespaces/team-a/pipelines/elsewhere/runs/1").status_code == 404
    assert token.get("/api/namespaces/team-b/pipelines").status_code == 404


def test_a_pipeline_grants_its_run_tokens_more_only_explicitly(namespaces):
    config = simple_config(
        run_token_grants=[{"resources": ["runs", "task_executions"], "actions": ["read", "write"]}],
    )
    pipeline = deployed_pipeline("team-a", config=config)
    runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    token = run_token_of(runs.start_run(SYSTEM_PRINCIPAL, pipeline, {}))
    assert token.get(f"{BUILD}/runs").status_code == 200
    assert token.get(f"{BUILD}/runs/1/tasks").status_code == 200
    assert token.post(f"{BUILD}/runs", {"variables": {}}).status_code == 201
    # A grant on the pipeline's runs is no grant on the pipeline itself.
    assert token.patch(BUILD, {"state": "disabled"}).status_code == 403
    assert token.get(f"{BUILD}/configs").status_code == 403


@pytest.mark.parametrize(
    ("grants", "field"),
    [
        ([{"resources": ["secrets"], "actions": ["read"]}], "config.run_token_grants[0].resources[0]"),
        ([{"resources": ["attach"], "actions": ["write"]}], "config.run_token_grants[0].resources[0]"),
        ([{"resources": ["runs", "subscriptions"], "actions": ["write"]}], "config.run_token_grants[0].resources[1]"),
        ([{"resources": ["namespaces:.*"], "actions": ["read"]}], "config.run_token_grants[0].resources[0]"),
        ([{"resources": ["all"], "actions": ["read"]}], "config.run_token_grants[0].resources[0]"),
        ([{"resources": ["runs"], "actions": ["fly"]}], "config.run_token_grants[0].actions[0]"),
        ("runs:write", "config.run_token_grants"),
    ],
)
def test_run_token_grants_are_limited_to_the_pipelines_own_resources(admin, namespaces, grants, field):
    response = admin.post(f"{BUILD}/configs", {"config": simple_config(run_token_grants=grants)})
    assert response.status_code == 400, response.json()
    assert response.json()["errors"][0]["field"] == field


def test_run_token_grants_are_shown_on_the_config(admin, namespaces):
    grants = [{"resources": ["runs"], "actions": ["read"]}]
    pipelines.register_config(namespaces["team-a"], "build", simple_config(run_token_grants=grants))
    assert admin.get(f"{BUILD}/configs/1").json()["config"]["run_token_grants"] == grants


def test_a_config_grants_its_run_tokens_only_what_its_author_may_do(namespaces):
    access.create_role(
        "team-a-configs",
        "",
        [{"resources": ["namespaces:^team-a$", "pipelines:.*", "configs"], "actions": ["read", "write"]}],
    )
    author = make_caller("author", ["team-a-configs"])
    grants = [{"resources": ["runs"], "actions": ["write"]}]
    refused = author.post(f"{BUILD}/configs", {"config": simple_config(run_token_grants=grants)})
    assert refused.status_code == 403, refused.json()
    assert refused.json()["errors"][0]["field"] == "config.run_token_grants[0]"
    allowed = [{"resources": ["configs"], "actions": ["read"]}]
    assert author.post(f"{BUILD}/configs", {"config": simple_config(run_token_grants=allowed)}).status_code == 201
