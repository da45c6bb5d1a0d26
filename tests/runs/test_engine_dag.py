"""The orchestrator runs DAGs: order, depends_on semantics, skips, final status, environment (on every engine)."""

from __future__ import annotations

import docker

from events.models import Event
from runs import logs
from runs.schedulers import memory
from tests.support.engine import MISSING_IMAGE, log_text, pipeline_with, run_to_completion, sh, tasks_of


def test_dependent_task_starts_after_its_parent_ends_and_the_run_succeeds(engine):
    pipeline = pipeline_with(
        [
            sh("first", engine.image, "echo one; sleep 1"),
            sh("second", engine.image, "echo two", depends_on={"first": "Success"}),
        ]
    )
    run = run_to_completion(engine, pipeline)
    assert (run.state, run.status) == ("complete", "successful")
    tes = tasks_of(run)
    assert tes["second"].started >= tes["first"].ended
    assert {te.status for te in tes.values()} == {"successful"}
    assert log_text(tes["first"]) == ["one"]
    assert tes["first"].exit_code == 0
    if engine.kind == "memory":
        assert tes["first"].image_digest == memory.image_digest(engine.image)
    else:  # the test image is built locally, so it has no registry digest: what ran is its image id
        client = docker.from_env()
        try:
            assert tes["first"].image_digest == client.images.get(engine.image).id
        finally:
            client.close()
    completed = Event.objects.filter(kind="completed_run", run_number=run.number).get()
    assert completed.details["status"] == "successful"


def test_failure_skips_success_children_and_runs_failure_and_any_children(engine):
    pipeline = pipeline_with(
        [
            sh("build", engine.image, "echo broken >&2; exit 3"),
            sh("deploy", engine.image, "echo deploying", depends_on={"build": "Success"}),
            sh("announce", engine.image, "echo after deploy", depends_on={"deploy": "Success"}),
            sh("alert", engine.image, "echo alerting", depends_on={"build": "Failure"}),
            sh("cleanup", engine.image, "echo cleaning", depends_on={"build": "Any"}),
            sh("report", engine.image, "echo reporting", depends_on={"deploy": "Any"}),
        ]
    )
    run = run_to_completion(engine, pipeline)
    tes = tasks_of(run)
    assert tes["build"].status == "failed"
    assert tes["build"].status_reason == "abnormal_exit"
    assert tes["build"].exit_code == 3
    assert tes["deploy"].status == "skipped"
    assert tes["deploy"].status_reason == "failed_precondition"
    assert "build is failed, needs success" in tes["deploy"].status_description
    assert tes["announce"].status == "skipped"  # the skip cascades through success edges
    assert tes["alert"].status == "successful"
    assert tes["cleanup"].status == "successful"
    assert tes["report"].status == "successful"  # a skipped parent satisfies "any"
    assert (run.status, run.status_reason) == ("failed", "abnormal_exit")
    assert "build" in run.status_description
    assert log_text(tes["build"]) == ["broken"]


def test_independent_tasks_run_at_the_same_time(engine):
    pipeline = pipeline_with([sh("left", engine.image, "sleep 2"), sh("right", engine.image, "sleep 2")])
    run = run_to_completion(engine, pipeline)
    left, right = tasks_of(run)["left"], tasks_of(run)["right"]
    assert left.started < right.ended and right.started < left.ended


def test_run_variables_win_over_task_variables_which_win_over_system_ones(engine):
    script = (
        'test "$FOO" = from-run && test "$BAR" = from-task && test "$GOFER_RUN_ID" = 1 '
        '&& test "$GOFER_PIPELINE_ID" = env && test "$GOFER_NAMESPACE_ID" = team-a && test "$GOFER_TASK_ID" = check '
        '&& test -n "$GOFER_TASK_IMAGE" && test -n "$GOFER_API_BASE_URL" && test "$GOFER_TASK_ID" != overridden'
    )
    pipeline = pipeline_with(
        [sh("check", engine.image, script, variables={"foo": "from-task", "bar": "from-task"})], pipeline_id="env"
    )
    run = run_to_completion(engine, pipeline, {"FOO": "from-run"})
    te = tasks_of(run)["check"]
    assert te.status == "successful", te.status_description
    by_key = {v["key"]: v for v in te.variables}
    assert by_key["FOO"] == {"key": "FOO", "value": "from-run", "source": "run_options"}
    assert by_key["BAR"]["source"] == "pipeline_config"
    assert by_key["GOFER_RUN_ID"]["source"] == "system"


def test_a_missing_image_fails_the_task_before_it_starts_with_a_readable_reason(engine):
    pipeline = pipeline_with([sh("ghost", MISSING_IMAGE, "true")], pipeline_id="ghost")
    run = run_to_completion(engine, pipeline)
    te = tasks_of(run)["ghost"]
    assert (te.status, te.status_reason) == ("failed", "scheduler_error")
    assert "does-not-exist" in te.status_description
    assert te.container_id == ""
    assert (run.status, run.status_reason) == ("failed", "scheduler_error")


def test_logging_off_stores_nothing_and_says_so(engine, alice):
    pipeline = pipeline_with([sh("quiet", engine.image, "echo secret-ish output", logging=False)], pipeline_id="quiet")
    run = run_to_completion(engine, pipeline)
    te = tasks_of(run)["quiet"]
    assert te.status == "successful"
    assert not logs.path_for(te).exists()
    response = alice.get(f"/api/namespaces/team-a/pipelines/quiet/runs/{run.number}/tasks/quiet/logs")
    assert response.status_code == 410
    assert "logging is off" in response.json()["message"]


def test_the_timeline_tells_the_story_of_the_run(engine, alice):
    pipeline = pipeline_with(
        [sh("a", engine.image, "true"), sh("b", engine.image, "exit 1", depends_on={"a": "Success"})],
        pipeline_id="story",
    )
    run = run_to_completion(engine, pipeline)
    body = alice.get(f"/api/namespaces/team-a/pipelines/story/runs/{run.number}/timeline").json()
    kinds = [(e["kind"], e["task_id"]) for e in body["timeline"]]
    assert kinds[0] == ("queued", "")
    assert ("admitted", "") in kinds
    assert ("task_started", "a") in kinds and ("task_completed", "b") in kinds
    assert kinds[-1] == ("completed", "")
    assert any("exit code 1" in e["message"] for e in body["timeline"])
