"""Deleting a namespace or a pipeline removes everything below it; the event log keeps the story."""

from __future__ import annotations

import pytest

from events.models import Event
from kernel.errors import NotFound
from kernel.rbac import SYSTEM_PRINCIPAL
from pipelines.models import Deployment, Namespace, Pipeline, PipelineConfig, Task
from runs import services as runs
from runs.models import Run, TaskExecution, TimelineEntry
from tests.conftest import deployed_pipeline


def populate(namespace_id: str, slug: str) -> Pipeline:
    """A deployed pipeline with two runs, task executions and timeline rows."""
    pipeline = deployed_pipeline(namespace_id, slug)
    for _ in range(2):
        run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {"FOO": "bar"})
        for task_slug in ("compile", "test"):
            TaskExecution.objects.create(namespace_id=namespace_id, pipeline=pipeline, run=run, task_slug=task_slug)
        runs.note(run, "note", "something happened")
    return pipeline


def rows_of(namespace_id: str, pipeline: Pipeline | None = None) -> dict[str, int]:
    """How many rows of each kind hang off the namespace (or off one pipeline in it)."""
    scope = {"pipeline_id": pipeline.pk} if pipeline is not None else {"namespace_id": namespace_id}
    pipelines = Pipeline.objects.filter(pk=pipeline.pk) if pipeline is not None else Pipeline.objects.filter(**scope)
    return {
        "pipelines": pipelines.count(),
        "configs": PipelineConfig.objects.filter(**scope).count(),
        "tasks": Task.objects.filter(**{f"config__{k}": v for k, v in scope.items()}).count(),
        "deployments": Deployment.objects.filter(**scope).count(),
        "runs": Run.objects.filter(**scope).count(),
        "task_executions": TaskExecution.objects.filter(**scope).count(),
        "timeline": TimelineEntry.objects.filter(**{f"run__{k}": v for k, v in scope.items()}).count(),
    }


@pytest.fixture
def two_tenants(namespaces):
    return {"a": populate("team-a", "build"), "a2": populate("team-a", "lint"), "b": populate("team-b", "build")}


def test_deleting_a_namespace_removes_everything_in_it(two_tenants, admin):
    before = rows_of("team-a")
    assert all(count > 0 for count in before.values()), before
    run_pks = list(Run.objects.filter(namespace_id="team-a").values_list("pk", flat=True))

    assert admin.delete("/api/namespaces/team-a").status_code == 204

    assert rows_of("team-a") == dict.fromkeys(before, 0)
    assert not Namespace.objects.filter(id="team-a").exists()
    assert not TimelineEntry.objects.filter(run_id__in=run_pks).exists()
    assert not Task.objects.filter(config__namespace_id="team-a").exists()


def test_deleting_a_namespace_leaves_other_namespaces_alone(two_tenants, admin):
    before = rows_of("team-b")
    admin.delete("/api/namespaces/team-a")
    assert rows_of("team-b") == before
    assert admin.get("/api/namespaces/team-b/pipelines/build/runs/2").status_code == 200


def test_after_deleting_a_namespace_no_run_can_start_there(two_tenants, admin):
    admin.delete("/api/namespaces/team-a")
    response = admin.post("/api/namespaces/team-a/pipelines/build/runs", {})
    assert response.status_code == 404
    assert response.json()["message"] == "namespace team-a not found"
    with pytest.raises(NotFound):
        runs.start_run(SYSTEM_PRINCIPAL, two_tenants["a"], {})
    assert not Run.objects.filter(namespace_id="team-a").exists()


def test_after_deleting_a_namespace_its_events_are_kept(two_tenants, admin):
    before = Event.objects.filter(namespace_id="team-a").count()
    assert before > 0
    admin.delete("/api/namespaces/team-a")
    assert Event.objects.filter(namespace_id="team-a").count() == before + 1
    deleted = Event.objects.get(kind="deleted_namespace", namespace_id="team-a")
    assert deleted.details == {"namespace_id": "team-a"}
    listed = admin.get("/api/events", reverse="true", limit="1").json()["events"]
    assert listed[0]["kind"] == {"deleted_namespace": {"namespace_id": "team-a"}}


def test_a_namespace_recreated_with_the_same_id_starts_empty(two_tenants, admin):
    admin.delete("/api/namespaces/team-a")
    assert admin.post("/api/namespaces", {"id": "team-a", "name": "Again"}).status_code == 201
    assert admin.get("/api/namespaces/team-a/pipelines").json() == {"pipelines": []}


def test_deleting_a_pipeline_removes_everything_below_it(two_tenants, alice):
    pipeline = two_tenants["a"]
    before = rows_of("team-a", pipeline)
    assert all(count > 0 for count in before.values()), before
    run_pks = list(pipeline.runs.values_list("pk", flat=True))

    assert alice.delete("/api/namespaces/team-a/pipelines/build").status_code == 204

    assert rows_of("team-a", pipeline) == dict.fromkeys(before, 0)
    assert not TimelineEntry.objects.filter(run_id__in=run_pks).exists()
    assert alice.get("/api/namespaces/team-a/pipelines/build/runs/1").status_code == 404
    assert alice.get("/api/namespaces/team-a/pipelines/build/configs/1").status_code == 404


def test_deleting_a_pipeline_leaves_its_siblings_alone(two_tenants, alice, charlie):
    sibling_before = rows_of("team-a", two_tenants["a2"])
    other_before = rows_of("team-b", two_tenants["b"])
    alice.delete("/api/namespaces/team-a/pipelines/build")
    assert rows_of("team-a", two_tenants["a2"]) == sibling_before
    assert rows_of("team-b", two_tenants["b"]) == other_before
    assert charlie.get("/api/namespaces/team-b/pipelines/build").status_code == 200


def test_after_deleting_a_pipeline_no_run_can_start_on_it(two_tenants, alice):
    alice.delete("/api/namespaces/team-a/pipelines/build")
    response = alice.post("/api/namespaces/team-a/pipelines/build/runs", {})
    assert response.status_code == 404
    assert response.json()["message"] == "pipeline build not found"
    with pytest.raises(NotFound):
        runs.start_run(SYSTEM_PRINCIPAL, two_tenants["a"], {})


def test_after_deleting_a_pipeline_its_events_are_kept(two_tenants, alice):
    before = Event.objects.filter(namespace_id="team-a", pipeline_slug="build").count()
    alice.delete("/api/namespaces/team-a/pipelines/build")
    assert Event.objects.filter(namespace_id="team-a", pipeline_slug="build").count() == before + 1
    assert Event.objects.filter(kind="deleted_pipeline", pipeline_slug="build").exists()
    kinds = [next(iter(e["kind"])) for e in alice.get("/api/events", limit="500").json()["events"]]
    assert "deleted_pipeline" in kinds
    assert "queued_run" in kinds
