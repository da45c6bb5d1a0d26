"""Defects found when the engine became a package, each with the test that would have caught it.

On the memory scheduler (no Docker needed): a task keeps the engine that started it; a step never holds its lease
past expiry without renewing; the masker resolves secrets once per task execution; who cancelled is a field, not a
guess from a description; housekeeping goes through the owning apps' services.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from access import services as access
from events import services as events
from events.models import Event
from kernel.rbac import SYSTEM_PRINCIPAL, Principal, compile_role
from pipelines.models import Namespace
from runs import interpolation
from runs import services as runs
from runs.engine import driving, leases, masking
from runs.models import Run, TaskExecution
from runs.schedulers import get_scheduler, memory
from secretstore import services as secrets
from tests.conftest import deployed_pipeline
from tests.support import engine as engine_support


@pytest.fixture
def inline(transactional_db, settings, monkeypatch):
    """The orchestrator on the memory engine through the inline queue, with short slices and leases."""
    settings.GOFER_SCHEDULER = "memory"
    settings.GOFER_DRIVE_SLICE_SECONDS = 1
    settings.GOFER_LEASE_SECONDS = 2
    settings.GOFER_TASK_STOP_TIMEOUT = 2
    get_scheduler.cache_clear()
    memory.reset()
    queue = engine_support.install(monkeypatch)
    yield queue
    memory.reset()
    get_scheduler.cache_clear()


def pipeline_of(tasks, pipeline_id="found"):
    if not Namespace.objects.filter(id="team-f").exists():
        Namespace.objects.create(id="team-f", name="Team F")
    config = {"id": pipeline_id, "name": pipeline_id, "tasks": tasks}
    return deployed_pipeline("team-f", pipeline_id, config)


def sh(task_id, script, **extra):
    return {"id": task_id, "image": "busybox:latest", "command": ["sh", "-c", script], **extra}


def finished(run):
    return lambda: Run.objects.get(pk=run.pk).state == "complete"


def test_a_running_task_is_driven_on_the_engine_that_started_it_after_the_setting_changes(inline, settings):
    pipeline = pipeline_of([sh("work", "echo started; sleep 2; echo done")])
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    inline.drain(until=lambda: TaskExecution.objects.filter(run=run, state="running").exists())
    te = TaskExecution.objects.get(run=run)
    assert te.scheduler == "memory"
    # An operator switches engines while the task runs: the task must still be watched on memory, where it lives
    # (on "local" it would be reported missing and fail as orphaned).
    settings.GOFER_SCHEDULER = "local"
    get_scheduler.cache_clear()
    inline.drain(until=finished(run), timeout=30)
    te.refresh_from_db()
    assert (te.status, te.exit_code) == ("successful", 0)
    assert te.scheduler == "memory"


def test_the_engine_is_recorded_before_the_container_is_asked_for(inline, monkeypatch):
    pipeline = pipeline_of([sh("work", "true")])
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    seen = []
    real_start = memory.MemoryScheduler.start

    def start(self, spec):
        seen.append(TaskExecution.objects.get(run=run).scheduler)
        return real_start(self, spec)

    monkeypatch.setattr(memory.MemoryScheduler, "start", start)
    inline.drain(until=finished(run), timeout=30)
    assert seen == ["memory"]


def _other_worker_can_claim(te_pk: int) -> bool:
    """Whether a second worker could take the lease now (run in another thread, with its own connection)."""
    result = []

    def attempt():
        try:
            result.append(leases.claim(te_pk) is not None)
        finally:
            connection.close()

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    return result[0]


def _active_task_execution(inline):
    pipeline = pipeline_of([sh("work", "sleep 30")], pipeline_id="leased")
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    # Running once a worker continued from its start into its first watch round (GOFER_CONTINUE_IN_WORKER).
    inline.drain(until=lambda: TaskExecution.objects.filter(run=run, state__in=["processing", "running"]).exists())
    return TaskExecution.objects.get(run=run)


def test_a_back_off_sleep_longer_than_the_lease_keeps_the_lease(inline):
    te = _active_task_execution(inline)
    TaskExecution.objects.filter(pk=te.pk).update(lease_expires=None)
    lease = leases.claim(te.pk)
    assert lease is not None
    lease.sleep(5)  # two and a half leases of 2 s
    assert not _other_worker_can_claim(te.pk)


def test_a_blocking_call_longer_than_the_lease_keeps_the_lease_through_the_heartbeat(inline):
    te = _active_task_execution(inline)
    TaskExecution.objects.filter(pk=te.pk).update(lease_expires=None)
    lease = leases.claim(te.pk)
    with lease.kept():
        time.sleep(5)  # what a slow image pull looks like to the step
        assert not _other_worker_can_claim(te.pk)
    lease.renew()


def test_without_renewal_the_lease_would_lapse_so_the_tests_above_can_fail(inline):
    te = _active_task_execution(inline)
    TaskExecution.objects.filter(pk=te.pk).update(lease_expires=None)
    leases.claim(te.pk)
    time.sleep(3)
    assert _other_worker_can_claim(te.pk)


def test_a_heartbeat_that_finds_the_lease_taken_raises_lease_lost(inline):
    te = _active_task_execution(inline)
    TaskExecution.objects.filter(pk=te.pk).update(lease_expires=None)
    lease = leases.claim(te.pk)
    with pytest.raises(leases.LeaseLost), lease.kept():
        TaskExecution.objects.filter(pk=te.pk).update(lease_owner="someone-else")
        time.sleep(1.5)


def test_a_transient_start_failure_backs_off_under_a_renewed_lease(inline, monkeypatch, settings):
    """The back-off of a failed start (2 s after the first attempt) is longer than half the lease: the lease must
    be renewed while waiting, or another worker would start a second container."""
    settings.GOFER_CONTINUE_IN_WORKER = False  # the task must wait, processing, for a drive message of its own
    pipeline = pipeline_of([sh("work", "true")], pipeline_id="flaky")
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    inline.drain(until=lambda: TaskExecution.objects.filter(run=run, state="processing").exists())
    te = TaskExecution.objects.get(run=run)
    renewals = []
    real_renew = leases.Lease.renew

    def renew(self):
        renewals.append(time.monotonic())
        return real_renew(self)

    monkeypatch.setattr(leases.Lease, "renew", renew)
    lease = leases.claim(te.pk)  # free: the drive message that would take it was not run
    assert lease is not None
    started = time.monotonic()
    driving._retry_start(te, lease, "engine error: flaky")
    assert time.monotonic() - started >= 2
    gaps = [b - a for a, b in zip([started, *renewals], renewals, strict=False)]
    assert renewals and max(gaps) < 2  # never a whole lease without renewing
    assert TaskExecution.objects.get(pk=te.pk).start_attempts == 1


def test_the_masker_resolves_secrets_once_per_task_execution(inline, monkeypatch, settings):
    settings.GOFER_DRIVE_SLICE_SECONDS = 1
    pipeline = pipeline_of(
        [sh("talk", "echo $TOKEN; sleep 3; echo $TOKEN", variables={"TOKEN": "pipeline_secret{{tok}}"})],
        pipeline_id="masked",
    )
    secrets.put_pipeline_secret(pipeline, "tok", "s3cr3t-value-1234", force=False)
    calls = []
    real = interpolation.secret_values

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(interpolation, "secret_values", counting)
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    inline.drain(until=finished(run), timeout=30)
    te = TaskExecution.objects.get(run=run)
    slices = sum(1 for func, args in inline.executed if func.endswith("drive_task_execution") and args == (te.pk,))
    # Started (with its first watch round, in the advance step), then watched over several more slices.
    assert slices >= 2
    assert len(calls) == 1
    assert te.pk not in masking._cache  # forgotten once the task finished


def test_a_user_whose_name_contains_admin_cancels_as_a_user_not_an_admin(inline):
    """The old engine decided "admin_cancelled" by looking for "admin" in the description."""
    pipeline = pipeline_of([sh("work", "sleep 30")], pipeline_id="cancel-me")
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    inline.drain(until=lambda: TaskExecution.objects.filter(run=run, state="running").exists())
    te = TaskExecution.objects.get(run=run)
    user = Principal(kind="token", name="sysadmin-bot", roles=())
    runs.cancel_task_execution(user, te, 0)
    inline.drain(until=finished(run), timeout=30)
    run.refresh_from_db()
    assert (run.status, run.status_reason) == ("cancelled", "user_cancelled")
    assert TaskExecution.objects.get(pk=te.pk).cancel_reason == "user_cancelled"


def test_an_admin_cancelling_a_task_makes_the_run_admin_cancelled(inline):
    pipeline = pipeline_of([sh("work", "sleep 30")], pipeline_id="cancel-admin")
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    inline.drain(until=lambda: TaskExecution.objects.filter(run=run, state="running").exists())
    admin = Principal(
        kind="token", name="ops", roles=(compile_role("admin", [{"resources": ["all"], "actions": ["read"]}]),)
    )
    assert admin.is_admin
    runs.cancel_task_execution(admin, TaskExecution.objects.get(run=run), 0)
    inline.drain(until=finished(run), timeout=30)
    run.refresh_from_db()
    assert (run.status, run.status_reason) == ("cancelled", "admin_cancelled")


def test_event_retention_deletes_only_old_events_through_the_events_service(transactional_db):
    old = events.publish("created_namespace", {"namespace_id": "x"}, namespace_id="x")
    Event.objects.filter(pk=old.pk).update(emitted=timezone.now() - dt.timedelta(days=30))
    new = events.publish("created_namespace", {"namespace_id": "y"}, namespace_id="y")
    assert events.prune_events(before=timezone.now() - dt.timedelta(days=1)) == 1
    assert list(Event.objects.filter(pk__in=[old.pk, new.pk]).values_list("pk", flat=True)) == [new.pk]


def test_revoking_tokens_deletes_exactly_those_tokens(transactional_db):
    _, keep = access.create_token("keep", ["user"])
    _, gone = access.create_token("gone", ["user"])
    assert access.revoke_tokens([gone.pk]) == 1
    assert access.revoke_tokens([gone.pk]) == 0
    assert list(type(keep).objects.filter(pk__in=[keep.pk, gone.pk]).values_list("user", flat=True)) == ["keep"]


def test_a_renewal_just_after_the_claim_sends_nothing_and_a_later_one_extends_the_lease(
    inline, monkeypatch, django_assert_num_queries
):
    te = _active_task_execution(inline)
    TaskExecution.objects.filter(pk=te.pk).update(lease_expires=None)
    lease = leases.claim(te.pk)
    with django_assert_num_queries(0):
        lease.renew()  # the claim a moment ago set the whole lease: an UPDATE would change nothing
    before = TaskExecution.objects.values_list("lease_expires", flat=True).get(pk=te.pk)
    monkeypatch.setattr(leases, "RENEW_AT_MOST_EVERY", 0)
    with django_assert_num_queries(1):
        lease.renew()
    assert TaskExecution.objects.values_list("lease_expires", flat=True).get(pk=te.pk) > before
    # And a renewal that finds the lease taken still says so.
    TaskExecution.objects.filter(pk=te.pk).update(lease_owner="someone-else")
    with pytest.raises(leases.LeaseLost):
        lease.renew()
