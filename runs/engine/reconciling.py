"""``reconcile``: re-drive whatever has nobody working on it.

Every minute (a django-q2 schedule) and whenever a worker process starts: task executions whose lease lapsed (their
worker died) are queued again, running runs that nobody drives (their last message was lost) or that passed the
global run timeout are stepped, pending runs are admitted, and old containers and events are pruned. Idempotent:
the queue is a doorbell, the database the ledger.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from runs import queue
from runs.choices import ACTIVE_TASK_STATES, RunState
from runs.engine.admission import admit_pending_runs
from runs.engine.pruning import prune_containers, prune_events
from runs.models import Run, TaskExecution


def reconcile() -> dict[str, int]:
    """Re-drive whatever has nobody working on it. Returns what it found, for the logs and the tests."""
    now = timezone.now()
    orphaned = list(
        TaskExecution.objects.filter(state__in=ACTIVE_TASK_STATES)
        .filter(Q(lease_expires__isnull=True) | Q(lease_expires__lt=now))
        .values_list("pk", flat=True)
    )
    for te_pk in orphaned:
        queue.task_execution_now(te_pk)
    # Running runs that nobody is driving (their last message was lost), or past the global run timeout. A run
    # with a task under a live lease moves on by itself when that task completes.
    overdue = now - dt.timedelta(seconds=settings.GOFER_GLOBAL_RUN_TIMEOUT)
    driven = TaskExecution.objects.filter(state__in=ACTIVE_TASK_STATES, lease_expires__gte=now).values("run_id")
    running = list(
        Run.objects.filter(state=RunState.RUNNING)
        .filter(Q(started__lt=overdue, cancel_requested__isnull=True) | ~Q(pk__in=driven))
        .values_list("pk", flat=True)
    )
    for run_pk in running:
        queue.advance_run_now(run_pk)
    admitted = admit_pending_runs()
    for run_pk in admitted:
        queue.advance_run_now(run_pk)
    return {
        "orphaned_task_executions": len(orphaned),
        "stepped_runs": len(running),
        "admitted_runs": len(admitted),
        "pruned_containers": prune_containers(),
        "pruned_events": prune_events(),
    }
