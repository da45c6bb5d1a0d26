"""Cleaning up what finished work leaves behind: old containers on the engines, old events."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.utils import timezone

from access import services as access
from events import services as events
from runs.choices import TaskExecutionState
from runs.models import TaskExecution
from runs.schedulers import get_scheduler
from runs.schedulers.base import SchedulerError

logger = logging.getLogger(__name__)


def _is_done(te_pk: str) -> bool:
    try:
        return TaskExecution.objects.filter(pk=int(te_pk), state=TaskExecutionState.COMPLETE).exists()
    except ValueError:
        return False


def engines_in_use() -> set[str]:
    """The configured engine and every engine a task execution was started on (an operator may have switched)."""
    names = set(TaskExecution.objects.exclude(scheduler="").order_by().values_list("scheduler", flat=True).distinct())
    names.add(settings.GOFER_SCHEDULER)
    return names


def prune_containers() -> int:
    """Remove this installation's containers whose task executions finished more than GOFER_CONTAINER_PRUNE_AFTER
    ago, on every engine in use; returns how many. With the default of 0 the engine removes each container when its
    task completes; this sweep catches those it could not (a crash in between, an engine that was down)."""
    older_than = dt.timedelta(seconds=settings.GOFER_CONTAINER_PRUNE_AFTER)
    installation = access.installation_id()
    pruned = 0
    for name in sorted(engines_in_use()):
        try:
            pruned += get_scheduler(name).prune(older_than, _is_done, installation=installation)
        except Exception as exc:  # one unreachable or misconfigured engine must not stop the others' pruning
            level = logging.WARNING if isinstance(exc, SchedulerError) else logging.ERROR
            logger.log(level, "container pruning on %s failed: %s", name, exc)
    return pruned


def prune_events() -> int:
    """Delete events older than GOFER_EVENT_RETENTION_SECONDS (through the events app); returns how many."""
    cutoff = timezone.now() - dt.timedelta(seconds=settings.GOFER_EVENT_RETENTION_SECONDS)
    return events.prune_events(before=cutoff)
