"""Task executions over the API: list, get and cancel (rows made with the ORM until the orchestrator makes them)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from events.models import Event
from kernel.rbac import SYSTEM_PRINCIPAL
from runs import services as runs
from runs.models import TaskExecution
from tests.support.contract import TASK_EXECUTION_FIELDS as TE_KEYS

RUN = "/api/namespaces/team-a/pipelines/build/runs/1"
TASKS = f"{RUN}/tasks"


@pytest.fixture
def run(team_a_pipeline):
    run = runs.start_run(SYSTEM_PRINCIPAL, team_a_pipeline, {"FOO": "bar"})
    started = timezone.now() - dt.timedelta(seconds=30)
    TaskExecution.objects.create(
        namespace=run.namespace,
        pipeline=team_a_pipeline,
        run=run,
        task_slug="compile",
        task={
            "id": "compile",
            "image": "busybox:latest",
            "registry_auth": {"user": "robot", "pass": "registry-password-123"},
        },
        state="complete",
        status="successful",
        exit_code=0,
        started=started,
        ended=started + dt.timedelta(seconds=5),
        scheduler="docker",
        container_id="abc123",
        image_digest="sha256:feed",
        variables=[
            {"key": "GOFER_PIPELINE_ID", "value": "build", "source": "system"},
            {"key": "GOFER_TOKEN", "value": "run-token-secret", "source": "system"},
            {"key": "MODE", "value": "fast", "source": "pipeline_config"},
            {"key": "FOO", "value": "bar", "source": "run_options"},
        ],
    )
    TaskExecution.objects.create(
        namespace=run.namespace, pipeline=team_a_pipeline, run=run, task_slug="test", task={"id": "test"}
    )
    return run


def test_list_task_executions(run, bob):
    response = bob.get(TASKS)
    assert response.status_code == 200
    listed = response.json()["task_executions"]
    assert [te["task_id"] for te in listed] == ["compile", "test"]
    assert all(set(te) == TE_KEYS for te in listed)


def test_get_a_task_execution_in_gofer_shape(run, bob):
    response = bob.get(f"{TASKS}/compile")
    assert response.status_code == 200
    te = response.json()["task_execution"]
    assert set(te) == TE_KEYS
    assert (te["namespace_id"], te["pipeline_id"], te["run_id"], te["task_id"]) == ("team-a", "build", 1, "compile")
    assert (te["state"], te["status"], te["exit_code"], te["status_reason"]) == ("complete", "successful", 0, None)
    assert te["ended"] - te["started"] == 5000
    assert te["created"] > 0
    assert (te["scheduler"], te["container_id"], te["image_digest"]) == ("docker", "abc123", "sha256:feed")
    assert (te["logs_expired"], te["logs_removed"]) == (False, False)


def test_unset_times_are_0_and_exit_code_null(run, bob):
    te = bob.get(f"{TASKS}/test").json()["task_execution"]
    assert (te["started"], te["ended"]) == (0, 0)
    assert te["exit_code"] is None
    assert (te["state"], te["status"]) == ("waiting", "unknown")


def test_a_status_reason_has_reason_and_description(run, bob):
    TaskExecution.objects.filter(task_slug="test").update(
        state="complete", status="skipped", status_reason="failed_precondition", status_description="parent failed"
    )
    te = bob.get(f"{TASKS}/test").json()["task_execution"]
    assert te["status_reason"] == {"reason": "failed_precondition", "description": "parent failed"}


def test_system_variables_are_not_echoed(run, bob):
    te = bob.get(f"{TASKS}/compile").json()["task_execution"]
    assert te["variables"] == [
        {"key": "MODE", "value": "fast", "source": "pipeline_config"},
        {"key": "FOO", "value": "bar", "source": "run_options"},
    ]
    for response in (bob.get(TASKS), bob.get(f"{TASKS}/compile")):
        assert "run-token-secret" not in response.content.decode()
        assert "GOFER_TOKEN" not in response.content.decode()


def test_the_registry_password_in_the_task_snapshot_is_redacted(run, bob):
    te = bob.get(f"{TASKS}/compile").json()["task_execution"]
    assert te["task"]["registry_auth"] == {"user": "robot", "pass": "[redacted]"}
    assert "registry-password-123" not in bob.get(TASKS).content.decode()


def test_a_missing_task_execution_is_404_naming_task_id(run, bob):
    response = bob.get(f"{TASKS}/deploy")
    assert response.status_code == 404
    assert response.json()["message"] == "task execution deploy not found"
    assert response.json()["errors"][0]["field"] == "task_id"


def test_task_executions_of_a_missing_run_are_404_naming_run_id(run, bob):
    response = bob.get("/api/namespaces/team-a/pipelines/build/runs/2/tasks")
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "run_id"


def test_a_bad_run_id_is_400(run, bob):
    response = bob.get("/api/namespaces/team-a/pipelines/build/runs/zero/tasks/compile")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "run_id"


def test_a_run_without_task_executions_lists_none(team_a_pipeline, alice):
    runs.start_run(SYSTEM_PRINCIPAL, team_a_pipeline, {})
    assert alice.get(TASKS).json() == {"task_executions": []}


def test_outsider_gets_404_on_task_executions(run, charlie):
    assert charlie.get(TASKS).status_code == 404
    assert charlie.get(f"{TASKS}/compile").status_code == 404
    assert charlie.delete(f"{TASKS}/test").status_code == 404


def test_reading_task_executions_needs_the_task_executions_permission(run, namespaces):
    from access import services as access
    from tests.conftest import make_caller

    access.create_role(
        "runs-only", "", [{"resources": ["namespaces:^team-a$", "pipelines:.*", "runs"], "actions": ["read"]}]
    )
    response = make_caller("r", ["runs-only"]).get(TASKS)
    assert response.status_code == 403
    assert "task_executions" in response.json()["message"]


# --- cancel ---------------------------------------------------------------------------------------------------------


def test_cancel_a_task_execution_with_wait_for(run, alice):
    response = alice.delete(f"{TASKS}/test?wait_for=30")
    assert response.status_code == 204
    assert "Gofer-Changed" not in response
    te = TaskExecution.objects.get(task_slug="test")
    assert te.cancel_requested is not None
    assert te.cancel_wait_for == 30
    assert "alice" in te.cancel_description
    event = Event.objects.get(kind="started_task_execution_cancellation")
    assert event.details == {
        "namespace_id": "team-a",
        "pipeline_id": "build",
        "run_id": 1,
        "task_execution_id": "test",
        "timeout": 30,
    }
    kinds = [(e["kind"], e["task_id"]) for e in alice.get(f"{RUN}/timeline").json()["timeline"]]
    assert ("task_cancel_requested", "test") in kinds


def test_wait_for_0_kills_at_once(run, alice):
    assert alice.delete(f"{TASKS}/test?wait_for=0").status_code == 204
    assert TaskExecution.objects.get(task_slug="test").cancel_wait_for == 0


def test_without_wait_for_the_server_default_applies(run, alice):
    assert alice.delete(f"{TASKS}/test").status_code == 204
    assert TaskExecution.objects.get(task_slug="test").cancel_wait_for is None


@pytest.mark.parametrize(
    ("wait_for", "says"),
    [
        ("-1", "must be at least 0"),
        ("abc", "must be an integer"),
        ("1.5", "must be an integer"),
        ("3601", "must be at most 3600"),
    ],
)
def test_invalid_wait_for_is_400(run, alice, wait_for, says):
    response = alice.delete(f"{TASKS}/test?wait_for={wait_for}")
    assert response.status_code == 400
    assert response.json()["message"].startswith(f"wait_for: {says}")
    assert response.json()["errors"][0]["field"] == "wait_for"
    assert TaskExecution.objects.get(task_slug="test").cancel_requested is None


def test_wait_for_3600_is_accepted(run, alice):
    assert alice.delete(f"{TASKS}/test?wait_for=3600").status_code == 204


def test_cancelling_a_finished_task_execution_is_204_with_a_header_saying_nothing_changed(run, alice):
    response = alice.delete(f"{TASKS}/compile")
    assert response.status_code == 204
    assert response["Gofer-Changed"] == "false"
    assert response.content == b""
    assert TaskExecution.objects.get(task_slug="compile").cancel_requested is None


def test_read_only_member_cannot_cancel_a_task_execution(run, bob):
    assert bob.delete(f"{TASKS}/test").status_code == 403
    assert TaskExecution.objects.get(task_slug="test").cancel_requested is None


def test_cancelling_a_missing_task_execution_is_404(run, alice):
    assert alice.delete(f"{TASKS}/deploy").status_code == 404
