"""Recording how task executions and runs end: once, conditionally, with their event and timeline line.

Both functions are the only writers of a ``complete`` state. A task execution is completed by a conditional UPDATE
(not already complete, and, for a worker, still under its lease), so two workers racing to record an outcome record
it once. A run is completed under its row lock (advancing.py holds it).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from access import services as access
from events import services as events
from events.choices import EventKind
from runs.choices import (
    RunState,
    RunStatus,
    RunStatusReason,
    TaskExecutionState,
    TaskExecutionStatus,
    TaskExecutionStatusReason,
)
from runs.engine.leases import Lease
from runs.models import Run, TaskExecution
from runs.services import note, run_details, run_scope
from runs.signals import run_finished, send_after_commit, task_execution_finished


def te_details(te: TaskExecution, **extra: Any) -> dict[str, Any]:
    """An event's details for a task execution: its run's ids and the task id."""
    return {**run_details(te.run), "task_execution_id": te.task_slug, **extra}


def complete_task(
    te: TaskExecution,
    status: str,
    reason: str,
    description: str,
    *,
    exit_code: int | None = None,
    started: dt.datetime | None = None,
    ended: dt.datetime | None = None,
    lease: Lease | None = None,
) -> bool:
    """Mark ``te`` complete (once); with ``lease``, only while that lease is still held. Returns whether this call
    recorded the outcome; when it did, ``te`` holds the recorded fields too."""
    queryset = TaskExecution.objects.filter(pk=te.pk).exclude(state=TaskExecutionState.COMPLETE)
    if lease is not None:
        queryset = queryset.filter(lease.mine())
    fields = {
        "state": TaskExecutionState.COMPLETE,
        "status": status,
        "status_reason": reason,
        "status_description": description,
        "exit_code": exit_code,
        "ended": ended or timezone.now(),
        "lease_owner": "",
        "lease_expires": None,
    }
    if started is not None:
        fields["started"] = started
    with transaction.atomic():
        if queryset.update(**fields) != 1:
            return False
        for name, value in fields.items():
            setattr(te, name, value)
        events.publish(EventKind.COMPLETED_TASK_EXECUTION, te_details(te, status=status), **run_scope(te.run))
        note(te.run, "task_completed", f"{status}" + (f" ({reason}): {description}" if reason else ""), te.task_slug)
        send_after_commit(
            task_execution_finished,
            task_execution_pk=te.pk,
            run_pk=te.run_id,
            pipeline_pk=te.pipeline_id,
            task_execution=te,
        )
    return True


_REASON_FROM_TASK = {
    TaskExecutionStatusReason.ABNORMAL_EXIT: RunStatusReason.ABNORMAL_EXIT,
    TaskExecutionStatusReason.SCHEDULER_ERROR: RunStatusReason.SCHEDULER_ERROR,
    TaskExecutionStatusReason.ORPHANED: RunStatusReason.SCHEDULER_ERROR,
    TaskExecutionStatusReason.FAILED_PRECONDITION: RunStatusReason.FAILED_PRECONDITION,
    TaskExecutionStatusReason.TIMEOUT: RunStatusReason.TIMEOUT,
}


def finish_run(run: Run, task_executions: list[TaskExecution]) -> None:
    """Complete the run with Gofer's status rule (under the caller's lock on the run row): cancelled if it or a
    task was cancelled, else failed if a task failed (the reason is the first failed task's), else successful. The
    ``completed_run`` event carries the final status (Gofer sent the old one)."""
    cancelled = [te for te in task_executions if te.status == TaskExecutionStatus.CANCELLED]
    failed = [te for te in task_executions if te.status == TaskExecutionStatus.FAILED]
    if run.cancel_requested is not None and run.cancel_reason == RunStatusReason.TIMEOUT:
        status, reason, description = RunStatus.FAILED, RunStatusReason.TIMEOUT, run.cancel_description
    elif run.cancel_requested is not None:
        status, reason, description = RunStatus.CANCELLED, run.cancel_reason, run.cancel_description
    elif cancelled:
        first = cancelled[0]
        status = RunStatus.CANCELLED
        # Who cancelled is a field of the task execution (set by whoever asked), not a guess from its text.
        reason = first.cancel_reason or RunStatusReason.USER_CANCELLED
        description = f"task {first.task_slug} was {first.cancel_description or 'cancelled'}"
    elif failed:
        first = failed[0]
        status = RunStatus.FAILED
        reason = _REASON_FROM_TASK.get(first.status_reason, RunStatusReason.UNKNOWN)
        description = f"task {first.task_slug} failed: {first.status_description}"
    else:
        status, reason, description = RunStatus.SUCCESSFUL, "", ""
    run.state = RunState.COMPLETE
    run.status = status
    run.status_reason = reason
    run.status_description = description
    run.ended = timezone.now()
    run.save(update_fields=["state", "status", "status_reason", "status_description", "ended"])
    # The run token stops working with its run (issue 8): every task that used GOFER_TOKEN has ended, and only
    # later tasks of this run ever read token_secret. Same transaction: a completed run never has a live token.
    access.revoke_run_token(run)
    events.publish(EventKind.COMPLETED_RUN, {**run_details(run), "status": status}, **run_scope(run))
    note(run, "completed", f"{status}" + (f" ({reason}): {description}" if reason else ""))
    send_after_commit(run_finished, run_pk=run.pk)
