"""Parallelism limits, timeouts, cancellation and recovery, on every engine."""

from __future__ import annotations

import datetime as dt
import time

from django.utils import timezone

from kernel.rbac import SYSTEM_PRINCIPAL, Principal
from runs import services as runs
from runs.engine import reconciling
from runs.models import Run, TaskExecution
from runs.schedulers import get_scheduler
from tests.support.engine import (
    container_exists,
    container_state,
    container_times,
    log_text,
    pipeline_with,
    run_to_completion,
    running_log_text,
    sh,
    tasks_of,
)

ADMIN = SYSTEM_PRINCIPAL
USER = Principal(kind="token", name="alice", roles=())


def state_of(run):
    return Run.objects.get(pk=run.pk).state


def test_pipeline_parallelism_queues_runs_in_order(engine):
    # Longer than the first watch round after a start (LOG_FOLLOW_SECONDS), so the run is seen running.
    pipeline = pipeline_with([sh("work", engine.image, "sleep 2")], pipeline_id="serial", parallelism=1)
    first = runs.start_run(ADMIN, pipeline, {})
    second = runs.start_run(ADMIN, pipeline, {})
    third = runs.start_run(ADMIN, pipeline, {})
    engine.drain(until=lambda: state_of(first) == "running")
    assert state_of(second) == "pending" and state_of(third) == "pending"
    engine.drain(until=lambda: state_of(third) == "complete", timeout=120)
    done = {r.number: r for r in Run.objects.filter(pipeline=pipeline)}
    assert done[2].started >= done[1].ended
    assert done[3].started >= done[2].ended
    assert any("waiting: 1 of 1 runs" in e.message for e in done[2].timeline.all())


def test_zero_parallelism_means_the_server_default_not_unlimited(engine, settings):
    settings.GOFER_PIPELINE_RUN_CONCURRENCY_LIMIT = 1
    pipeline = pipeline_with([sh("work", engine.image, "sleep 2")], pipeline_id="default-limit", parallelism=0)
    first = runs.start_run(ADMIN, pipeline, {})
    second = runs.start_run(ADMIN, pipeline, {})
    engine.drain(until=lambda: state_of(first) == "running")
    assert state_of(second) == "pending"
    engine.drain(until=lambda: state_of(second) == "complete", timeout=120)


def test_global_limit_serialises_runs_of_different_pipelines(engine, settings):
    settings.GOFER_GLOBAL_RUN_CONCURRENCY_LIMIT = 1
    one = pipeline_with([sh("work", engine.image, "sleep 2")], pipeline_id="one")
    two = pipeline_with([sh("work", engine.image, "sleep 1")], pipeline_id="two")
    a = runs.start_run(ADMIN, one, {})
    b = runs.start_run(ADMIN, two, {})
    engine.drain(until=lambda: state_of(a) == "running")
    assert state_of(b) == "pending"
    engine.drain(until=lambda: state_of(b) == "complete", timeout=120)
    a, b = Run.objects.get(pk=a.pk), Run.objects.get(pk=b.pk)
    assert b.started >= a.ended


def test_cancel_oldest_mode_makes_room_for_the_new_run(engine):
    pipeline = pipeline_with(
        [sh("work", engine.image, "sleep 60")],
        pipeline_id="latest-wins",
        parallelism=1,
        parallelism_mode="cancel_oldest",
    )
    old = runs.start_run(ADMIN, pipeline, {})
    engine.drain(until=lambda: TaskExecution.objects.filter(run=old, state="running").exists())
    new = runs.start_run(ADMIN, pipeline, {})
    engine.drain(until=lambda: state_of(old) == "complete", timeout=60)
    old = Run.objects.get(pk=old.pk)
    assert (old.status, old.status_reason) == ("cancelled", "superseded")
    assert "superseded by run 2" in old.status_description
    engine.drain(until=lambda: state_of(new) == "running", timeout=30)
    runs.cancel_run(ADMIN, Run.objects.get(pk=new.pk))
    engine.drain(until=lambda: state_of(new) == "complete", timeout=60)


def test_a_task_past_its_timeout_is_stopped_and_fails_with_reason_timeout(engine):
    pipeline = pipeline_with(
        [
            sh("slow", engine.image, "echo started; sleep 300"),
            sh("next", engine.image, "true", depends_on={"slow": "Any"}),
        ],
        pipeline_id="slow",
    )
    run = runs.start_run(ADMIN, pipeline, {})
    engine.drain(until=lambda: TaskExecution.objects.filter(run=run, task_slug="slow", state="running").exists())
    # The configurable minimum is 5 minutes; this test shortens the stored timeout rather than wait for it.
    te = TaskExecution.objects.get(run=run, task_slug="slow")
    te.task = {**te.task, "timeout": 1}
    te.save(update_fields=["task"])
    engine.drain(until=lambda: state_of(run) == "complete", timeout=90)
    te = TaskExecution.objects.get(pk=te.pk)
    assert (te.status, te.status_reason) == ("failed", "timeout")
    assert log_text(te) == ["started"]
    assert tasks_of(run)["next"].status == "successful"
    run = Run.objects.get(pk=run.pk)
    assert (run.status, run.status_reason) == ("failed", "timeout")


def test_the_global_run_timeout_fails_the_run(engine, settings):
    pipeline = pipeline_with(
        [sh("slow", engine.image, "sleep 300"), sh("after", engine.image, "true", depends_on={"slow": "Success"})],
        pipeline_id="too-long",
    )
    run = runs.start_run(ADMIN, pipeline, {})
    engine.drain(until=lambda: TaskExecution.objects.filter(run=run, state="running").exists())
    settings.GOFER_GLOBAL_RUN_TIMEOUT = 1
    settings.GOFER_TASK_STOP_TIMEOUT = 1
    engine.drain(until=lambda: state_of(run) == "complete", timeout=90)
    run = Run.objects.get(pk=run.pk)
    assert (run.status, run.status_reason) == ("failed", "timeout")
    assert "global run timeout" in run.status_description
    tes = tasks_of(run)
    assert tes["slow"].status_reason in ("timeout", "cancelled")
    assert (tes["after"].status, tes["after"].status_reason) == ("failed", "timeout")


def test_cancelling_a_run_stops_running_tasks_gracefully_and_cancels_waiting_ones(engine):
    script = "trap 'echo got SIGTERM; exit 143' TERM; echo ready; while true; do sleep 0.2; done"
    pipeline = pipeline_with(
        [sh("serve", engine.image, script), sh("later", engine.image, "true", depends_on={"serve": "Success"})],
        pipeline_id="cancel-me",
    )
    run = runs.start_run(ADMIN, pipeline, {})
    engine.drain(until=lambda: "ready" in running_log_text(run, "serve"))
    assert runs.cancel_run(USER, Run.objects.get(pk=run.pk)) is True
    engine.drain(until=lambda: state_of(run) == "complete", timeout=60)
    run = Run.objects.get(pk=run.pk)
    assert (run.status, run.status_reason) == ("cancelled", "user_cancelled")
    assert "alice" in run.status_description
    tes = tasks_of(run)
    assert (tes["serve"].status, tes["serve"].status_reason) == ("cancelled", "cancelled")
    assert log_text(tes["serve"]) == ["ready", "got SIGTERM"]  # it had the chance to shut down cleanly
    assert tes["later"].status == "cancelled"
    assert container_state(engine, tes["serve"].container_id) == "exited"
    assert runs.cancel_run(USER, run) is False  # already finished: nothing to do


def test_cancelling_one_task_with_wait_for_zero_kills_it_at_once(engine):
    script = "trap 'echo ignoring TERM' TERM; echo ready; while true; do sleep 0.2; done"
    pipeline = pipeline_with([sh("stubborn", engine.image, script)], pipeline_id="stubborn")
    run = runs.start_run(ADMIN, pipeline, {})
    engine.drain(until=lambda: "ready" in running_log_text(run, "stubborn"))
    te = TaskExecution.objects.get(run=run)
    started_cancel = timezone.now()
    assert runs.cancel_task_execution(ADMIN, te, wait_for=0) is True
    engine.drain(until=lambda: state_of(run) == "complete", timeout=60)
    te = TaskExecution.objects.get(pk=te.pk)
    assert (te.status, te.status_reason) == ("cancelled", "cancelled")
    assert te.exit_code == 137  # SIGKILL
    assert te.ended - started_cancel < dt.timedelta(seconds=10)
    assert "ignoring TERM" not in log_text(te)
    assert Run.objects.get(pk=run.pk).status == "cancelled"


def test_cancelling_a_pending_run_finishes_it_at_once(engine):
    pipeline = pipeline_with([sh("work", engine.image, "sleep 30")], pipeline_id="busy", parallelism=1)
    first = runs.start_run(ADMIN, pipeline, {})
    second = runs.start_run(ADMIN, pipeline, {})
    engine.drain(until=lambda: state_of(first) == "running")
    runs.cancel_run(ADMIN, Run.objects.get(pk=second.pk))
    engine.drain(until=lambda: state_of(second) == "complete", timeout=30)
    second = Run.objects.get(pk=second.pk)
    assert (second.status, second.status_reason) == ("cancelled", "admin_cancelled")
    assert not TaskExecution.objects.filter(run=second).exists()
    runs.cancel_run(ADMIN, Run.objects.get(pk=first.pk))
    engine.drain(until=lambda: state_of(first) == "complete", timeout=60)


def test_an_orphaned_task_is_adopted_and_its_real_times_are_recorded(engine):
    pipeline = pipeline_with([sh("quick", engine.image, "echo hi; sleep 2")], pipeline_id="orphan")
    run = runs.start_run(ADMIN, pipeline, {})
    engine.drain(until=lambda: TaskExecution.objects.filter(run=run, state="running").exists())
    # A worker died holding the lease, and the queue lost its messages: only the reconciler can bring it back.
    engine.messages.clear()
    TaskExecution.objects.filter(run=run).update(lease_owner="dead-worker", lease_expires=timezone.now())
    time.sleep(4)  # the container finishes while nobody watches
    engine.drain(until=lambda: state_of(run) == "complete", timeout=60)
    te = TaskExecution.objects.get(run=run)
    assert te.status == "successful"
    started, ended = container_times(engine, te.container_id)
    # The engine's times, not when the new worker noticed (seconds later).
    assert te.started.replace(microsecond=0) == started.replace(microsecond=0)
    assert te.ended.replace(microsecond=0) == ended.replace(microsecond=0)
    assert log_text(te) == ["hi"]


def test_a_task_the_engine_cannot_drive_fails_after_bounded_retries_and_says_why(engine, monkeypatch):
    """Fault injection: the engine answers something Gofer cannot handle (standing in for a bug)."""
    pipeline = pipeline_with([sh("stuck", engine.image, "sleep 60")], pipeline_id="stuck")
    run = runs.start_run(ADMIN, pipeline, {})
    engine.drain(until=lambda: TaskExecution.objects.filter(run=run, state="running").exists())

    def broken_status(self, handle):
        raise RuntimeError("unexpected answer from the engine")

    monkeypatch.setattr(type(get_scheduler(engine.kind)), "status", broken_status)
    engine.drain(until=lambda: state_of(run) == "complete", timeout=90, reconcile_every=0.5)
    te = TaskExecution.objects.get(run=run)
    assert (te.status, te.status_reason) == ("failed", "scheduler_error")
    assert "unexpected answer from the engine" in te.status_description
    assert te.drive_errors == 4  # the fifth error failed it
    assert container_state(engine, te.container_id) == "exited"  # killed, not left running
    assert run.timeline.filter(kind="internal_error").count() == 4


def test_finished_containers_are_pruned_after_the_configured_delay(engine, settings):
    pipeline = pipeline_with([sh("quick", engine.image, "true")], pipeline_id="prune")
    run = run_to_completion(engine, pipeline)
    container_id = TaskExecution.objects.get(run=run).container_id
    assert container_exists(engine, container_id)  # kept at first: a finished task's container helps debugging
    settings.GOFER_CONTAINER_PRUNE_AFTER = 1
    time.sleep(1.5)
    assert reconciling.reconcile()["pruned_containers"] >= 1
    assert not container_exists(engine, container_id)
