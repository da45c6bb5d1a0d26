"""``reconcile``: re-drive whatever has nobody working on it.

Every minute (a django-q2 schedule) and whenever a worker process starts: task executions whose lease lapsed (their
worker died) are queued again, running runs that nobody drives (their last message was lost) or that passed the
global run timeout or their namespace's run_duration quota are stepped, pending runs are admitted, and old
containers and events are pruned. Idempotent: the queue is a doorbell, the database the ledger.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from pipelines.models import NamespaceQuotas
from runs import queue
from runs.choices import ACTIVE_TASK_STATES, RunState
from runs.engine.admission import admit_pending_runs
from runs.engine.pruning import prune_containers, prune_events
from runs.models import Run, TaskExecution


def _past_run_duration_quota(now: dt.datetime) -> list[int]:
    """Running runs past their namespace's run_duration quota (pipelines/quotas.py), to be stepped (and so
    cancelled) like those past the global run timeout. One query, plus one per namespace with such a quota and
    running runs."""
    limited = NamespaceQuotas.objects.filter(
        run_duration__isnull=False,
        run_duration__lt=settings.GOFER_GLOBAL_RUN_TIMEOUT,
        namespace_id__in=Run.objects.filter(state=RunState.RUNNING).values("namespace_id"),
    ).values_list("namespace_id", "run_duration")
    found: list[int] = []
    for namespace_id, seconds in limited:
        found += Run.objects.filter(
            namespace_id=namespace_id,
            state=RunState.RUNNING,
            cancel_requested__isnull=True,
            started__lt=now - dt.timedelta(seconds=seconds),
        ).values_list("pk", flat=True)
    return found


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
    running += [pk for pk in _past_run_duration_quota(now) if pk not in set(running)]
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
