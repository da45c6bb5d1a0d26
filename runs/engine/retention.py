"""Log retention: the logs of a pipeline's older runs are deleted as new runs arrive."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from runs import logs
from runs.choices import RunState
from runs.models import Run, TaskExecution


def expire_old_logs(pipeline: Any) -> int:
    """Delete the log files of complete runs older than the newest GOFER_TASK_LOG_RETENTION_RUNS runs; returns how
    many task executions' logs went. Their records say so (``logs_expired``), so readers get a 410."""
    keep = settings.GOFER_TASK_LOG_RETENTION_RUNS
    newest = list(Run.objects.filter(pipeline=pipeline).order_by("-number").values_list("number", flat=True)[:keep])
    if len(newest) < keep:
        return 0
    old = Run.objects.filter(pipeline=pipeline, state=RunState.COMPLETE, number__lt=newest[-1])
    stale = TaskExecution.objects.filter(run__in=old, logs_expired=False).select_related("run", "pipeline")
    count = 0
    for te in stale:
        logs.path_for(te).unlink(missing_ok=True)
        TaskExecution.objects.filter(pk=te.pk).update(logs_expired=True, logs_removed=True)
        count += 1
    return count
