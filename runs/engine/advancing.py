"""``advance_run``: move one run forward as far as the database allows right now.

Under a row lock on the run: applies cancellation and the global run timeout, decides for each waiting task whether
its parents let it run (``depends_on`` any/success/failure; a failed check skips it, and skips cascade through
``success`` edges), hands the tasks that may start to ``drive_task_execution``, and completes the run once every
task execution is complete. Then it admits pending runs, since this run may have freed a slot. Safe to call any
number of times, from any worker.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from events import services as events
from events.choices import EventKind
from pipelines import quotas
from pipelines.taskspec import TaskSpec
from runs import queue
from runs.choices import (
    ACTIVE_TASK_STATES,
    RunState,
    RunStatusReason,
    TaskExecutionState,
    TaskExecutionStatus,
    TaskExecutionStatusReason,
)
from runs.engine.admission import admit_pending_runs
from runs.engine.leases import lease_seconds
from runs.engine.outcomes import complete_task, finish_run
from runs.models import Run, TaskExecution
from runs.services import note, run_details, run_scope


def advance_run(run_pk: int, *, keep_one: bool = False) -> int | None:
    """Move a run forward as far as the database allows right now. Safe to call any number of times.

    Every task execution it makes ready is handed to ``drive_task_execution`` through the queue, except, with
    ``keep_one`` and exactly one made ready, that one: its pk is returned instead, for the caller to drive in this
    worker (runs/engine/driving.py, ``continue_run``) without a queue round trip. Several are all queued, so that
    idle workers start them side by side. A kept task execution is like a queued message: if the caller dies before
    claiming its lease, the reconciler re-drives it once the grace of ``_release_ready_tasks`` lapses."""
    to_drive: list[int] = []
    with transaction.atomic():
        run = Run.objects.select_for_update(of=("self",)).select_related("pipeline").filter(pk=run_pk).first()
        if run is None or run.state == RunState.COMPLETE:
            return None
        if run.state == RunState.PENDING and run.cancel_requested is not None:
            finish_run(run, [])
        elif run.state == RunState.RUNNING:
            to_drive = _step_running(run)
    admitted = admit_pending_runs()
    kept = to_drive.pop() if keep_one and len(to_drive) == 1 else None
    for te_pk in to_drive:
        queue.task_execution_now(te_pk)
    if run.state == RunState.PENDING and run.pk in admitted:
        # Our own run was just admitted: start its root tasks now rather than after another queue round trip.
        kept = advance_run(run.pk, keep_one=keep_one)
    for other in admitted:
        if other != run.pk:
            queue.advance_run_now(other)
    return kept


def satisfied(requirement: str, parent_status: str) -> bool:
    """Whether a parent that finished with ``parent_status`` meets a ``depends_on`` requirement."""
    if requirement == "success":
        return parent_status == TaskExecutionStatus.SUCCESSFUL
    if requirement == "failure":
        return parent_status == TaskExecutionStatus.FAILED
    # "any": the parent finished one way or another; a cancelled parent does not count as finished work.
    return parent_status in {TaskExecutionStatus.SUCCESSFUL, TaskExecutionStatus.FAILED, TaskExecutionStatus.SKIPPED}


def _apply_global_timeout(run: Run, now: dt.datetime) -> None:
    if run.cancel_requested is not None or run.started is None:
        return
    # The namespace's run_duration quota (pipelines/quotas.py) when it is shorter than the server's limit.
    limit, what = settings.GOFER_GLOBAL_RUN_TIMEOUT, "the global run timeout"
    quota = quotas.limited(run.namespace_id, "run_duration")
    if quota is not None and quota < limit:
        limit, what = quota, f"namespace {run.namespace_id}'s run_duration quota"
    if now - run.started > dt.timedelta(seconds=limit):
        run.cancel_requested = now
        run.cancel_reason = RunStatusReason.TIMEOUT
        run.cancel_description = f"the run exceeded {what} of {limit} s"
        run.save(update_fields=["cancel_requested", "cancel_reason", "cancel_description"])
        events.publish(EventKind.STARTED_RUN_CANCELLATION, run_details(run), **run_scope(run))
        note(run, "timeout", run.cancel_description)


def _cancel_tasks(run: Run, task_executions: list[TaskExecution], now: dt.datetime) -> list[int]:
    """A cancelled (or timed-out) run: waiting tasks end at once, active ones are told to stop."""
    timed_out = run.cancel_reason == RunStatusReason.TIMEOUT
    reason = TaskExecutionStatusReason.TIMEOUT if timed_out else TaskExecutionStatusReason.CANCELLED
    to_drive = []
    for te in task_executions:
        if te.state == TaskExecutionState.WAITING:
            status = TaskExecutionStatus.FAILED if timed_out else TaskExecutionStatus.CANCELLED
            complete_task(te, status, reason, run.cancel_description)
        elif te.state in ACTIVE_TASK_STATES and te.cancel_requested is None:
            TaskExecution.objects.filter(pk=te.pk, cancel_requested__isnull=True).update(
                cancel_requested=now,
                cancel_wait_for=settings.GOFER_TASK_STOP_TIMEOUT,
                cancel_reason=run.cancel_reason,
                cancel_description=run.cancel_description,
            )
            to_drive.append(te.pk)
    return to_drive


def _release_ready_tasks(run: Run, task_executions: list[TaskExecution]) -> list[int]:
    """Waiting tasks whose parents are all complete: skip those whose requirements failed, start the others."""
    to_drive = []
    changed = True
    while changed:  # skipping a task can make its children decidable: repeat until nothing moves
        changed = False
        by_slug = {te.task_slug: te for te in task_executions}
        for te in task_executions:
            if te.state != TaskExecutionState.WAITING:
                continue
            parents = TaskSpec.from_snapshot(te.task).depends_on
            if any(by_slug[p].state != TaskExecutionState.COMPLETE for p in parents if p in by_slug):
                continue
            unmet = [
                f"{p} is {by_slug[p].status}, needs {req}"
                for p, req in parents.items()
                if p in by_slug and not satisfied(req, by_slug[p].status)
            ]
            if unmet:
                if not complete_task(
                    te,
                    TaskExecutionStatus.SKIPPED,
                    TaskExecutionStatusReason.FAILED_PRECONDITION,
                    "skipped: " + "; ".join(unmet),
                ):
                    te.refresh_from_db()
            else:
                # The grace keeps the reconciler from queueing a second message while ours is on its way.
                grace = timezone.now() + dt.timedelta(seconds=lease_seconds() * 2)
                if TaskExecution.objects.filter(pk=te.pk, state=TaskExecutionState.WAITING).update(
                    state=TaskExecutionState.PROCESSING, lease_owner="", lease_expires=grace
                ):
                    te.state, te.lease_owner, te.lease_expires = TaskExecutionState.PROCESSING, "", grace
                    note(run, "task_ready", "parents done; starting", te.task_slug)
                    to_drive.append(te.pk)
                else:
                    te.refresh_from_db()  # moved by someone else (cannot happen under the run's lock; be exact)
            changed = True
    return to_drive


def _step_running(run: Run) -> list[int]:
    """Under the run lock: apply cancellation and timeouts, resolve waiting tasks, finish the run if all is done.
    Returns the task executions to drive."""
    now = timezone.now()
    task_executions = list(run.task_executions.order_by("id"))
    for te in task_executions:
        # The locked run itself, not a copy joined into every row: one read per step, however many tasks.
        te.run, te.pipeline = run, run.pipeline
    _apply_global_timeout(run, now)
    if run.cancel_requested is not None:
        to_drive = _cancel_tasks(run, task_executions, now)
    else:
        to_drive = _release_ready_tasks(run, task_executions)
    # The list is what this step read under the run's lock plus what it changed itself (complete_task and the
    # release update the instances). A task that completes after the read sends its own advance_run, which waits
    # for this lock and sees it: nothing is decided on a stale state.
    if task_executions and all(te.state == TaskExecutionState.COMPLETE for te in task_executions):
        finish_run(run, task_executions)
        return []
    return to_drive
